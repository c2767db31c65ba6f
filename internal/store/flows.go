package store

// The ranges a flow's fields must be in to be stored (the flows table's
// CHECKs and the API's schema): names of 1 to MaxFlowName characters, of
// valid UTF-8 without NUL; byte counts >= 0; hours 0 to MaxFlowHour.
const (
	MaxFlowName = 255
	MaxFlowHour = 2147483647
)

// Flow is one network flow as posted, or, when listed, the totals of every
// flow posted for its (SrcApp, DestApp, VpcID, Hour).
type Flow struct {
	SrcApp, DestApp, VpcID string
	BytesTx, BytesRx       int64
	Hour                   int64 // hours since the Unix epoch (UTC)
}
