package store

// The ranges a flow's fields must be in to be stored (the flows table's
// CHECKs and the API's schema): names of 1 to MaxFlowName characters and
// at most MaxFlowNameBytes bytes, of valid UTF-8 without NUL; byte counts
// >= 0; hours 0 to MaxFlowHour.
const (
	MaxFlowName = 255
	// MaxFlowNameBytes: the primary key holds the three names, and
	// PostgreSQL refuses an index entry of more than 2,704 bytes, which
	// three names of 255 four-byte characters pass (an error 500 until
	// 2026-12-04; 223 such characters each was the most that fit).
	MaxFlowNameBytes = 800
	MaxFlowHour      = 2147483647
)

// Flow is one network flow as posted, or, when listed, the totals of every
// flow posted for its (SrcApp, DestApp, VpcID, Hour).
type Flow struct {
	SrcApp, DestApp, VpcID string
	BytesTx, BytesRx       int64
	Hour                   int64 // hours since the Unix epoch (UTC)
}

// MaxFlowRange is the most hours one flows query may span (31 days): the
// indexes keep a 24-hour range fast at 10 M stored rows
// (docs/flows-storage.md), and a bound keeps the slowest query bounded too.
const MaxFlowRange = 744

// FlowFilter selects stored hourly totals: the hours [FromHour, ToHour)
// (hours since the epoch) and, when set, one src_app, dest_app or vpc_id.
type FlowFilter struct {
	FromHour, ToHour       int64
	SrcApp, DestApp, VpcID *string
}

// FlowSort orders a flows list: by key (hour, src_app, dest_app, vpc_id)
// or, with ByBytes, by bytes_tx + bytes_rx (top talkers); ties by key.
type FlowSort struct {
	ByBytes bool
	Desc    bool
}

// FlowSummaryKeys are the columns a flows summary can total by.
func FlowSummaryKeys() []string { return []string{"src_app", "dest_app", "vpc_id"} }

// FlowTotal is the totals of one key (a src_app, dest_app or vpc_id) over
// a range of hours.
type FlowTotal struct {
	Key              string
	BytesTx, BytesRx int64
	Bytes            int64 // BytesTx + BytesRx
}
