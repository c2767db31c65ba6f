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
	return groupsPage(rows)
}

// groupsPage is the page of the grouped statements' rows.
func groupsPage(rows []db.GroupMeasurementsPageRow) (store.Page[store.MeasurementGroup], error) {
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

// GroupedUnkept is one page of Grouped as it is answered without kept
// sealed cells (groupPage: the functions read every cell from
// PostgreSQL): the answer the kept cells must give.
func (m *Measurements) GroupedUnkept(ctx context.Context, f store.MeasurementFilter, s store.MeasurementSort, p store.PageRequest) (store.Page[store.MeasurementGroup], error) {
	params := groupPageParams(f, s)
	params.RowLimit, params.RowOffset = p.Limit, p.Offset
	q := db.New(customPlans{m.pool})
	rows, err := groupPage(ctx, q, f, params)
	if err != nil {
		return store.Page[store.MeasurementGroup]{}, err
	}
	if len(rows) == 0 && p.Offset > 0 {
		// Past the last group: their number, as Grouped counts it.
		page := store.Page[store.MeasurementGroup]{Items: []store.MeasurementGroup{}}
		first := params
		first.RowLimit, first.RowOffset = 1, 0
		some, err := groupPage(ctx, q, f, first)
		if err != nil || len(some) == 0 {
			return page, err
		}
		page.Total = some[0].Total
		return page, nil
	}
	return groupsPage(rows)
}

// KeptCellTiles is how many sealed tiles' cells m keeps (-1: it keeps
// none).
func (m *Measurements) KeptCellTiles() int {
	if m.cells == nil {
		return -1
	}
	return m.cells.len()
}

// RankKeptCellsInDatabase makes m behave as on a database whose collation
// does not compare text as bytes: the grouped view's kept cells are not
// used.
func (m *Measurements) RankKeptCellsInDatabase() { m.cells.byteOrder.Store(2) }

// SetKeptCellsGap runs fn between the two statements of the grouped view
// on kept cells, when it has cells to read, until the test ends.
func SetKeptCellsGap(t interface{ Cleanup(func()) }, fn func()) {
	keptCellsGap.Store(&fn)
	t.Cleanup(func() { keptCellsGap.Store(nil) })
}

// KeptTileCap is how many tiles a grouped call of m may use now.
func (m *Measurements) KeptTileCap() int { return m.cells.usableTiles() }
