package postgres

import (
	"context"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
)

// GroupedFromRows is one page of Grouped as GroupMeasurementsPage answers
// it, from the rollups and the rows, never from sealed units: the answer
// the sealed forms must give.
func (m *Measurements) GroupedFromRows(ctx context.Context, f store.MeasurementFilter, s store.MeasurementSort, p store.PageRequest) (store.Page[store.MeasurementGroup], error) {
	params := groupPageParams(f, s)
	params.RowLimit, params.RowOffset = p.Limit, p.Offset
	rows, err := db.New(customPlans{m.pool}).GroupMeasurementsPage(ctx, params)
	if err != nil {
		return store.Page[store.MeasurementGroup]{}, err
	}
	page := store.Page[store.MeasurementGroup]{Items: []store.MeasurementGroup{}}
	for _, r := range rows {
		g, err := pageGroup(r)
		if err != nil {
			return page, err
		}
		page.Items, page.Total = append(page.Items, g), r.Total
	}
	return page, nil
}
