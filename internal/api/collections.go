package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/danielgtaylor/huma/v2"

	"github.com/telemetry/telemetry/internal/store"
)

// MaxCollections is how many collections may exist at a time (the seed's
// limit); creating one more is a 400.
const MaxCollections = 10

const collectionsPath = "/appmetrics/api/v1/collections"

// The seed's units strings.
const (
	unitEpochMs  = "UNIX time (ms)"
	unitFraction = "decimal fraction"
	unitBytes    = "bytes"
	unitMs       = "ms"
	unitCount    = "count"
)

type collectionIDPath struct {
	ID string `path:"id" example:"0" doc:"Collection id, as in the URI collections/<id>. Anything that is not the id of an existing collection (a number not in use, or not a number) is 404; an id holding a NUL byte or invalid UTF-8 is 422."`
}

type listCollectionsOutput struct {
	Body struct {
		CollectionURIs []string `json:"collectionUris" example:"[\"collections/0\",\"collections/1\"]" doc:"URIs of the existing collections, relative to /appmetrics/api/v1, in creation order."`
	}
}

type createCollectionOutput struct {
	Location string `header:"Location" example:"collections/1" doc:"URI of the new collection, relative to /appmetrics/api/v1."`
	Body     createCollectionBody
}

// createCollectionBody is the answer of a create, also the one stored under
// its Idempotency-Key (its Location is the same URI).
type createCollectionBody struct {
	URI string `json:"uri" example:"collections/1" doc:"URI of the new collection, relative to /appmetrics/api/v1."`
}

// CollectionTime is the window of a collection.
type CollectionTime struct {
	Data  CollectionTimeData  `json:"data"`
	Units CollectionTimeUnits `json:"units"`
}

// CollectionCPU is the CPU figures of a collection.
type CollectionCPU struct {
	Data  CollectionCPUData  `json:"data"`
	Units CollectionCPUUnits `json:"units"`
}

// CollectionGC is the garbage collection figure of a collection.
type CollectionGC struct {
	Data  CollectionGCData  `json:"data"`
	Units CollectionGCUnits `json:"units"`
}

// CollectionMemory is the memory figures of a collection.
type CollectionMemory struct {
	Data  CollectionMemoryData  `json:"data"`
	Units CollectionMemoryUnits `json:"units"`
}

// CollectionURL is the traffic of one (path, method) in a collection.
type CollectionURL struct {
	URL                 string  `json:"url" example:"/flows" doc:"Request path, without the query."`
	Method              string  `json:"method" example:"GET" doc:"HTTP method."`
	Hits                int64   `json:"hits" minimum:"1" example:"1" doc:"Requests in the window."`
	AverageResponseTime float64 `json:"averageResponseTime" minimum:"0" example:"5.0827" doc:"Mean response time, ms."`
	LongestResponseTime float64 `json:"longestResponseTime" minimum:"0" example:"5.0827" doc:"Longest response time, ms."`
}

// CollectionHTTP is the traffic figures of a collection.
type CollectionHTTP struct {
	Data  []CollectionURL     `json:"data" doc:"One entry per (url, method) the service served in the window, by url then method."`
	Units CollectionHTTPUnits `json:"units"`
	// rest reads the entries after Data while the answer is written, when
	// Data is a full first page (collection_stream.go).
	rest *collectionRest
}

// CollectionTimeData is the data of CollectionTime.
type CollectionTimeData struct {
	Start int64 `json:"start" example:"1532697164637" doc:"When the window opened (creation or last clear), epoch milliseconds."`
	End   int64 `json:"end" example:"1532697174416" doc:"Now (the time of this answer), epoch milliseconds."`
}

// CollectionTimeUnits is the units of CollectionTime.
type CollectionTimeUnits struct {
	Start string `json:"start" enum:"UNIX time (ms)" example:"UNIX time (ms)"`
	End   string `json:"end" enum:"UNIX time (ms)" example:"UNIX time (ms)"`
}

// CollectionCPUData is the data of CollectionCPU.
type CollectionCPUData struct {
	SystemMean  float64 `json:"systemMean" minimum:"0" maximum:"1" example:"0.0111" doc:"Mean fraction of the machine's CPU time that was busy, over the window (time-weighted mean of the samples, all instances)."`
	SystemPeak  float64 `json:"systemPeak" minimum:"0" maximum:"1" example:"0.0117" doc:"Largest busy fraction of the machine in one sample interval."`
	ProcessMean float64 `json:"processMean" minimum:"0" maximum:"1" example:"0.00083" doc:"Mean fraction of the machine's CPU capacity (all cores) one service process used, over the window."`
	ProcessPeak float64 `json:"processPeak" minimum:"0" maximum:"1" example:"0.00083" doc:"Largest such fraction of one process in one sample interval."`
}

// CollectionCPUUnits is the units of CollectionCPU.
type CollectionCPUUnits struct {
	SystemMean  string `json:"systemMean" enum:"decimal fraction" example:"decimal fraction"`
	SystemPeak  string `json:"systemPeak" enum:"decimal fraction" example:"decimal fraction"`
	ProcessMean string `json:"processMean" enum:"decimal fraction" example:"decimal fraction"`
	ProcessPeak string `json:"processPeak" enum:"decimal fraction" example:"decimal fraction"`
}

// CollectionGCData is the data of CollectionGC.
type CollectionGCData struct {
	GCTime float64 `json:"gcTime" minimum:"0" maximum:"1" example:"0.0021" doc:"Fraction of the window spent in garbage collection: GC CPU time over the CPU time available to Go (GOMAXPROCS x wall time) during the window, summed over every instance."`
}

// CollectionGCUnits is the units of CollectionGC.
type CollectionGCUnits struct {
	GCTime string `json:"gcTime" enum:"decimal fraction" example:"decimal fraction"`
}

// CollectionMemoryData is the data of CollectionMemory.
type CollectionMemoryData struct {
	UsedHeapAfterGCPeak int64 `json:"usedHeapAfterGCPeak" minimum:"0" example:"4194304" doc:"Largest heap live after a garbage collection of one process in the window, bytes."`
	UsedNativePeak      int64 `json:"usedNativePeak" minimum:"0" example:"31457280" doc:"Largest resident memory (RSS) of one process in the window, bytes."`
}

// CollectionMemoryUnits is the units of CollectionMemory.
type CollectionMemoryUnits struct {
	UsedHeapAfterGCPeak string `json:"usedHeapAfterGCPeak" enum:"bytes" example:"bytes"`
	UsedNativePeak      string `json:"usedNativePeak" enum:"bytes" example:"bytes"`
}

// CollectionHTTPUnits is the units of CollectionHTTP.
type CollectionHTTPUnits struct {
	AverageResponseTime string `json:"averageResponseTime" enum:"ms" example:"ms"`
	LongestResponseTime string `json:"longestResponseTime" enum:"ms" example:"ms"`
	Hits                string `json:"hits" enum:"count" example:"count"`
}

// Collection is a collection's figures in the seed's shape.
type Collection struct {
	ID       int64            `json:"id" example:"0" doc:"Collection id."`
	Time     CollectionTime   `json:"time"`
	CPU      CollectionCPU    `json:"cpu"`
	GC       CollectionGC     `json:"gc"`
	Memory   CollectionMemory `json:"memory"`
	HTTPURLs CollectionHTTP   `json:"httpUrls"`
}

type getCollectionOutput struct {
	Body Collection
}

// registerCollections is the collections' setup step: they need none (the
// routes are in routes.go, their documentation in collectionsDocs).
func (s *server) registerCollections(huma.API) {}

// collectionsDocs documents the collections operations by id (routes.go lists them).
func (s *server) collectionsDocs() map[string]huma.Operation {
	tags := []string{"collections"}
	dbErrors := []int{http.StatusNotAcceptable, http.StatusInternalServerError, http.StatusServiceUnavailable}
	idErrors := append([]int{http.StatusNotFound}, dbErrors...)
	return map[string]huma.Operation{
		"listCollections": {
			Summary:     "List metrics collections",
			Description: fmt.Sprintf("The URIs of the existing collections in creation order (at most %d, so the list is not paginated).", MaxCollections),
			Tags:        tags,
			Errors:      dbErrors,
		},
		"createCollection": {
			Summary: "Create a metrics collection",
			Description: fmt.Sprintf("Opens a collection whose window starts now and answers its URI, also in the "+
				"Location header. Ids start at 0 and are never reused. At most %d collections exist at a time, "+
				"whichever server process is asked: one more is a 400 (delete one first).", MaxCollections),
			Tags:          tags,
			DefaultStatus: http.StatusCreated,
			Errors:        append([]int{http.StatusBadRequest}, dbErrors...),
		},
		"getCollection": {
			Summary: "Read a metrics collection",
			Description: "The service's figures since the collection's window opened (creation or last clear) until " +
				"now, aggregated over every server process sharing the database: CPU, garbage collection and " +
				"memory from the runtime samples each process writes every SELF_SAMPLE_INTERVAL, and the " +
				"requests the service recorded about itself (self-profiling) per URL path and method. Runtime " +
				"figures are 0 until the first sample after the window opened.",
			Tags:   tags,
			Errors: idErrors,
		},
		"clearCollection": {
			Summary:       "Clear a metrics collection",
			Description:   "Restarts the collection's window now; the id stays the same.",
			Tags:          tags,
			DefaultStatus: http.StatusNoContent,
			Errors:        idErrors,
		},
		"deleteCollection": {
			Summary:       "Delete a metrics collection",
			Description:   "Deletes the collection; its id is not given to another one.",
			Tags:          tags,
			DefaultStatus: http.StatusNoContent,
			Errors:        idErrors,
		},
	}
}

// documentCollections completes the document after registration. huma
// documents a 422 for every operation with a path parameter; here it is
// only the id that is not valid text (params.go): any other id that names
// no collection is a 404.
func (s *server) documentCollections(api huma.API) {
	if item := api.OpenAPI().Paths[collectionsPath+"/{id}"]; item != nil {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Delete} {
			r := op.Responses["422"]
			if r == nil || r.Content["application/problem+json"] == nil {
				continue
			}
			r.Description = "The id holds a NUL byte or is not valid UTF-8."
			ex := problemExample(http.StatusUnprocessableEntity)
			ex.Errors = []*ProblemItem{{Status: 422, Title: "unicode", Source: "id", Location: "path.id",
				Detail: "id must not contain NUL bytes (%00)", Value: "0\uFFFD"}}
			r.Content["application/problem+json"].Example = ex
		}
	}
}

func collectionURI(id int64) string { return "collections/" + strconv.FormatInt(id, 10) }

// collectionID parses a path id; anything but a decimal number in range,
// written as the list writes it (no leading zero: 013 is not 13), names no
// collection.
func collectionID(raw string) (int64, error) {
	valid := raw != "" && len(raw) <= 19 && (raw == "0" || raw[0] != '0')
	for _, c := range raw {
		valid = valid && c >= '0' && c <= '9'
	}
	id, err := strconv.ParseInt(raw, 10, 64)
	if !valid || err != nil {
		return 0, NewProblem(http.StatusNotFound, fmt.Sprintf("no collection with id %q", raw))
	}
	return id, nil
}

func (s *server) listCollections(ctx context.Context, _ *struct{}) (*listCollectionsOutput, error) {
	ids, err := s.st.Collections.IDs(ctx)
	if err != nil {
		return nil, s.storeError(ctx, "list collections", err)
	}
	out := &listCollectionsOutput{}
	out.Body.CollectionURIs = make([]string, len(ids))
	for i, id := range ids {
		out.Body.CollectionURIs[i] = collectionURI(id)
	}
	return out, nil
}

func (s *server) createCollection(ctx context.Context, _ *struct{}) (*createCollectionOutput, error) {
	// Keyed: a create retried after a lost answer would otherwise open a
	// second collection (of MaxCollections). The operation has no body, so
	// a repeat is the same method and path.
	body, _, err := keyedWrite(ctx, s, nil, http.StatusCreated,
		func(ctx context.Context) (any, error) { return s.st.Collections.Create(ctx, MaxCollections) },
		func(id any) createCollectionBody { return createCollectionBody{URI: collectionURI(id.(int64))} })
	if errors.Is(err, store.ErrTooManyCollections) {
		return nil, NewProblem(http.StatusBadRequest,
			fmt.Sprintf("at most %d collections may exist at a time: delete one first", MaxCollections))
	}
	if err != nil {
		return nil, s.storeError(ctx, "create collection", err)
	}
	return &createCollectionOutput{Location: body.URI, Body: body}, nil
}

func (s *server) getCollection(ctx context.Context, in *collectionIDPath) (*getCollectionOutput, error) {
	id, err := collectionID(in.ID)
	if err != nil {
		return nil, err
	}
	// The window, the runtime figures and the first page of the HTTP
	// figures are three reads: a clear (PUT) or a DELETE between them would
	// answer one window with another's figures. The window is read again
	// after them: cleared meanwhile, the reads are made again; deleted, a
	// 404.
	window := func() (store.CollectionWindow, error) {
		w, err := s.st.Collections.Window(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return w, noCollection(id)
		} else if err != nil {
			return w, s.storeError(ctx, "get collection", err)
		}
		return w, nil
	}
	var w store.CollectionWindow
	var rt store.CollectionRuntime
	var urls []store.CollectionURL
	for attempt := 1; ; attempt++ {
		if w, err = window(); err != nil {
			return nil, err
		}
		if rt, err = s.st.Collections.Runtime(ctx, w.Start, w.End); err != nil {
			return nil, s.storeError(ctx, "collection runtime figures", err)
		}
		if urls, err = s.st.Collections.HTTPTotalsPage(ctx, id, nil, collectionPage); err != nil {
			return nil, s.storeError(ctx, "collection http figures", err)
		}
		again, err := window()
		if err != nil {
			return nil, err
		}
		if again.Start.Equal(w.Start) {
			break
		}
		if attempt == 3 {
			return nil, unavailable("the collection was cleared while it was read; retry")
		}
	}
	out := &getCollectionOutput{Body: collectionOf(w, rt, urls)}
	if len(urls) == collectionPage {
		out.Body.HTTPURLs.rest = s.collectionRest(ctx, w, urls[len(urls)-1])
	}
	return out, nil
}

func noCollection(id int64) *Problem {
	return NewProblem(http.StatusNotFound, fmt.Sprintf("no collection with id %d", id))
}

// collectionOf builds the seed's document; times are in epoch ms and the
// response times, stored in seconds, in ms.
func collectionOf(w store.CollectionWindow, rt store.CollectionRuntime, urls []store.CollectionURL) Collection {
	c := Collection{ID: w.ID}
	c.Time.Data.Start, c.Time.Data.End = w.Start.UnixMilli(), w.End.UnixMilli()
	c.Time.Units.Start, c.Time.Units.End = unitEpochMs, unitEpochMs
	c.CPU.Data.SystemMean, c.CPU.Data.SystemPeak = finite(rt.SystemMean), finite(rt.SystemPeak)
	c.CPU.Data.ProcessMean, c.CPU.Data.ProcessPeak = finite(rt.ProcessMean), finite(rt.ProcessPeak)
	c.CPU.Units.SystemMean, c.CPU.Units.SystemPeak = unitFraction, unitFraction
	c.CPU.Units.ProcessMean, c.CPU.Units.ProcessPeak = unitFraction, unitFraction
	c.GC.Data.GCTime, c.GC.Units.GCTime = finite(rt.GCTime), unitFraction
	c.Memory.Data.UsedHeapAfterGCPeak, c.Memory.Data.UsedNativePeak = rt.HeapLivePeak, rt.RSSPeak
	c.Memory.Units.UsedHeapAfterGCPeak, c.Memory.Units.UsedNativePeak = unitBytes, unitBytes
	c.HTTPURLs.Data = collectionURLs(urls)
	c.HTTPURLs.Units.AverageResponseTime, c.HTTPURLs.Units.LongestResponseTime = unitMs, unitMs
	c.HTTPURLs.Units.Hits = unitCount
	return c
}

// collectionURLs is the answer's form of entries of httpUrls.
func collectionURLs(urls []store.CollectionURL) []CollectionURL {
	out := make([]CollectionURL, len(urls))
	for i, u := range urls {
		out[i] = CollectionURL{URL: u.Path, Method: u.Method, Hits: u.Hits,
			AverageResponseTime: finite(u.AvgSeconds * 1000), LongestResponseTime: finite(u.MaxSeconds * 1000)}
	}
	return out
}

func (s *server) clearCollection(ctx context.Context, in *collectionIDPath) (*struct{}, error) {
	return nil, s.changeCollection(ctx, in.ID, "clear collection", s.st.Collections.Clear)
}

func (s *server) deleteCollection(ctx context.Context, in *collectionIDPath) (*struct{}, error) {
	return nil, s.changeCollection(ctx, in.ID, "delete collection", s.st.Collections.Delete)
}

// changeCollection runs a clear or delete of one collection: 404 when
// there is no such collection.
func (s *server) changeCollection(ctx context.Context, raw, what string, fn func(context.Context, int64) error) error {
	id, err := collectionID(raw)
	if err != nil {
		return err
	}
	err = fn(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return noCollection(id)
	}
	if err != nil {
		return s.storeError(ctx, what, err)
	}
	return nil
}
