package api

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// PageQuery is embedded in the input of every list operation.
type PageQuery struct {
	Page int64 `query:"page" minimum:"1" maximum:"2147483647" default:"1" doc:"Page number, from 1."`
	Size int64 `query:"size" minimum:"1" maximum:"100" default:"50" doc:"Items per page, 1 to 100."`
}

// Offset is the number of rows before this page.
func (p PageQuery) Offset() int64 { return (p.Page - 1) * p.Size }

// Page is the body of every list answer.
type Page[T any] struct {
	Items []T   `json:"items" doc:"This page's items; empty past the last page."`
	Total int64 `json:"total" example:"1234" doc:"Items matching the filter, over all pages."`
	Page  int64 `json:"page" example:"1" doc:"This page's number."`
	Size  int64 `json:"size" example:"50" doc:"The page size asked for."`
}

// PageOutput is the answer of a list operation: the page and its Link header.
type PageOutput[T any] struct {
	Link string `header:"Link" doc:"RFC 8288 links to the first, last, previous and next pages, where they exist."`
	Body Page[T]
}

// newPage builds the answer for one page of items out of total. pinned
// are the values a list gave the parameters the request left out whose
// default moves (a window ending now): the links carry them, so that the
// next page is a page of the same rows, not of a window that has moved
// (a row added at its top would repeat the last row of this page on the
// next, and change the total).
func newPage[T any](ctx context.Context, q PageQuery, items []T, total int64, pinned ...url.Values) *PageOutput[T] {
	if items == nil {
		items = []T{}
	}
	return &PageOutput[T]{
		Link: pageLinks(ctx, q, total, pinned...),
		Body: Page[T]{Items: items, Total: total, Page: q.Page, Size: q.Size},
	}
}

// pageLinks builds the Link header from the request's own URL, so every
// filter the client gave is kept, and the pinned defaults of those it did
// not give.
func pageLinks(ctx context.Context, q PageQuery, total int64, pinned ...url.Values) string {
	u := *requestURL(ctx)
	last := (total + q.Size - 1) / q.Size
	if last < 1 {
		last = 1
	}
	link := func(page int64, rel string) string {
		// As huma read it (url.Values leaves out a pair holding a ';',
		// which huma applied).
		v := url.Values(rawQueryValues(u.RawQuery))
		// flask-profiler's skip and limit (measurements_dashboard.go) would
		// override page and size.
		v.Del("skip")
		v.Del("limit")
		for _, pin := range pinned {
			for k, vs := range pin {
				if !v.Has(k) {
					v[k] = vs
				}
			}
		}
		v.Set("page", strconv.FormatInt(page, 10))
		v.Set("size", strconv.FormatInt(q.Size, 10))
		u.RawQuery = v.Encode()
		return fmt.Sprintf("<%s%s>; rel=%q", basePath(ctx), u.RequestURI(), rel)
	}
	links := []string{link(1, "first")}
	if q.Page > 1 {
		links = append(links, link(min(q.Page-1, last), "prev"))
	}
	if q.Page < last {
		links = append(links, link(q.Page+1, "next"))
	}
	links = append(links, link(last, "last"))
	return strings.Join(links, ", ")
}
