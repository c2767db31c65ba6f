package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/telemetry/telemetry/internal/api"
	"github.com/telemetry/telemetry/internal/config"
)

// servePprof answers Go's profiler on addr (PPROF_ADDR), on a listener of
// its own so that profiling a server under load goes past none of the
// API's middleware, authentication or self-profiling, and is never exposed
// on the API's address. It returns what stops it.
// hosts (config.PprofHosts) are the names its requests' Host may carry:
// by default localhost and IP addresses on a loopback address, so that a
// DNS-rebinding page cannot read the profiles.
func servePprof(addr string, hosts config.Hosts, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No WriteTimeout: a CPU profile or a trace answers after its seconds.
	srv := &http.Server{Handler: api.RefuseOtherHosts(hosts)(mux), ReadHeaderTimeout: 10 * time.Second}
	log.Info("profiler listening", "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("profiler stopped", "error", err.Error())
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = srv.Close()
	}, nil
}
