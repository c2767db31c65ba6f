package postgres

import (
	"context"

	"github.com/telemetry/telemetry/internal/store"
)

// listPage runs a list query whose rows carry the filter's total in a
// window column (count(*) OVER ()), and converts its rows. Past the last
// page no row carries the total, so count gives it. Items is never nil.
func listPage[R, T any](ctx context.Context, op string, p store.PageRequest,
	list func(context.Context) ([]R, error),
	total func(R) int64,
	count func(context.Context) (int64, error),
	item func(R) T,
) (store.Page[T], error) {
	rows, err := list(ctx)
	if err != nil {
		return store.Page[T]{}, wrap(op, err)
	}
	out := store.Page[T]{Items: make([]T, len(rows))}
	for i, r := range rows {
		out.Items[i] = item(r)
	}
	switch {
	case len(rows) > 0:
		out.Total = total(rows[0])
	case p.Offset > 0 && count != nil:
		if out.Total, err = count(ctx); err != nil {
			return store.Page[T]{}, wrap(op+": count", err)
		}
	}
	return out, nil
}
