package api

import (
	"context"
	"errors"

	"github.com/telemetry/telemetry/internal/store"
)

// The exports of the list operations (export.go): the same input, filters
// and order as each list handler, every item handed to emit as the store
// reads it. Which lists export, and which do not, is in docs/export.md.

func (s *server) exportFlows(ctx context.Context, in *listFlowsInput, emit func(Flow) error) error {
	err := s.st.Export.Flows(ctx, in.filter, in.sort, func(f store.Flow) error { return emit(Flow(f)) })
	return s.exportError(ctx, "export flows", err)
}

func (s *server) exportFlowSummary(ctx context.Context, in *flowSummaryInput, emit func(FlowTotal) error) error {
	err := s.st.Export.FlowSummary(ctx, in.filter, in.By, func(t store.FlowTotal) error { return emit(FlowTotal(t)) })
	return s.exportError(ctx, "export flow summary", err)
}

func (s *server) exportStates(ctx context.Context, in *listStatesInput, emit func(EventRun) error) error {
	err := s.st.Export.Runs(ctx, in.filter, func(r store.Run) error { return emit(eventRun(r)) })
	return s.exportError(ctx, "export runs", err)
}

func (d *devicesAPI) exportDevices(ctx context.Context, _ *listDevicesInput, emit func(Device) error) error {
	err := d.st.Export.Devices(ctx, func(dev store.Device) error { return emit(deviceOf(dev)) })
	return d.exportError(ctx, "export devices", err)
}

func (d *devicesAPI) exportCurrentMetrics(ctx context.Context, in *currentMetricsInput, emit func(CurrentMetric) error) error {
	err := d.st.Export.CurrentMetrics(ctx, in.ID, d.now(), func(m store.CurrentMetric) error {
		return emit(CurrentMetric{Name: m.Name, Value: MetricValue{Str: m.Text, Num: m.Num}, Units: m.Units,
			Type: m.Type, Slope: m.Slope, TTL: m.TTL, ReportedAt: m.ReportedAt})
	})
	if err != nil && !exportEnded(err) {
		return d.deviceError(ctx, "export current device metrics", in.ID, err)
	}
	return err
}

func (d *devicesAPI) exportCurrentNames(ctx context.Context, _ *currentNamesInput, emit func(MetricSummary) error) error {
	err := d.st.Export.CurrentNames(ctx, d.now(), func(m store.MetricSummary) error {
		return emit(MetricSummary{Name: m.Name, Devices: m.Devices, Min: m.Min, Max: m.Max})
	})
	return d.exportError(ctx, "export current metric names", err)
}

func (d *devicesAPI) exportHistory(ctx context.Context, in *historyInput, emit func(HistoryPoint) error) error {
	q, width := in.query, in.width
	var err error
	if width == 0 {
		err = d.st.Export.History(ctx, q, func(pt store.HistoryPoint) error { return emit(historyPoint(pt)) })
	} else {
		err = d.st.Export.HistoryBuckets(ctx, q, width, func(b store.HistoryBucket) error { return emit(historyBucket(b)) })
	}
	if err != nil && !exportEnded(err) {
		return d.deviceError(ctx, "export metric history", in.ID, err)
	}
	return err
}

func (s *server) exportMeasurements(ctx context.Context, in *listMeasurementsInput, emit func(Measurement) error) error {
	err := s.st.Export.Measurements(ctx, in.filter(), store.MeasurementSort{Key: in.sortKey, Desc: in.desc},
		func(m store.Measurement) error { return emit(measurementOf(m)) })
	return s.exportError(ctx, "export measurements", err)
}

func (s *server) exportMeasurementGroups(ctx context.Context, in *groupMeasurementsInput, emit func(MeasurementGroup) error) error {
	err := s.st.Export.MeasurementGroups(ctx, in.filter(), store.MeasurementSort{Key: in.sortKey, Desc: in.desc},
		func(r store.MeasurementGroup) error { return emit(measurementGroupOf(r)) })
	return s.exportError(ctx, "export measurement groups", err)
}

// exportError answers an export's store error as the list would; a
// cancelled export (the client went away, or the first row did not come
// within DB_TIMEOUT: runExport tells them apart) is left as is.
func (s *server) exportError(ctx context.Context, op string, err error) error {
	if err == nil || exportEnded(err) {
		return err
	}
	return s.storeError(ctx, op, err)
}

func isCanceled(err error) bool { return errors.Is(err, context.Canceled) }

// exportEnded reports whether an export's store call ended because the
// export did (its client went away, or a HEAD had its headers), not for a
// fault of the store: runExport answers it.
func exportEnded(err error) bool { return isCanceled(err) || errors.Is(err, errHeadAnswered) }
