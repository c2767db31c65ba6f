package store

// PageRequest selects one page of a list: Limit rows after Offset.
type PageRequest struct {
	Limit, Offset int64
}

// Page is one page of a list and the exact number of items its filter
// matches, over all pages.
type Page[T any] struct {
	Items []T
	Total int64
}
