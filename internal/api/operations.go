package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/telemetry/telemetry/internal/store"
)

// Health is the liveness answer.
type Health struct {
	Status string `json:"status" example:"ok" doc:"Always ok: the process is alive."`
}

type healthOutput struct{ Body Health }

// Readiness is the readiness answer.
type Readiness struct {
	Status        string `json:"status" example:"ready" doc:"ready when the database answers and the schema is current, or newer (a later release's, migrated before its instances start)."`
	SchemaVersion int64  `json:"schemaVersion" example:"2" doc:"Applied migration version."`
	Mode          string `json:"mode" example:"timescaledb" enum:"timescaledb,postgresql" doc:"Whether time-series tables are TimescaleDB hypertables or plain tables."`
}

type readyOutput struct{ Body Readiness }

func (s *server) operationsDocs() map[string]huma.Operation {
	tags := []string{"operations"}
	return map[string]huma.Operation{
		"getHealth": {Summary: "Liveness: the process is alive", Tags: tags},
		"getReady": {Summary: "Readiness: the database answers and the schema is not behind", Tags: tags,
			Errors: []int{http.StatusServiceUnavailable}},
	}
}

func (s *server) getHealth(context.Context, *struct{}) (*healthOutput, error) {
	out := &healthOutput{}
	out.Body.Status = "ok"
	return out, nil
}

func (s *server) getReady(ctx context.Context, _ *struct{}) (*readyOutput, error) {
	version, mode, err := s.st.Health.Ready(ctx)
	if err != nil {
		s.warns.Warn(ctx, "not ready", "", "error", err.Error(), "request_id", RequestID(ctx))
		return nil, unavailable("not ready: " + readyReason(err))
	}
	out := &readyOutput{}
	out.Body.Status, out.Body.SchemaVersion, out.Body.Mode = "ready", version, mode
	return out, nil
}

// readyReason says why without leaking driver messages (the warning
// logged by getReady has them): a store failure names the check that
// failed, whose text (store.Error's) would carry the driver's message, with
// table, role and SQLSTATE, to anyone who can reach /readyz. Other errors
// are the service's own (the schema behind the binary) and are shown.
func readyReason(err error) string {
	if errors.Is(err, store.ErrReadOnly) {
		return "the database is read-only (a replica or in recovery): writes would fail"
	}
	if errors.Is(err, store.ErrUnavailable) {
		return "the database is unreachable"
	}
	if se := (*store.Error)(nil); errors.As(err, &se) {
		return "the database failed the " + se.Op + " check; the server's log has the cause"
	}
	return err.Error()
}
