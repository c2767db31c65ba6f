package store

// Flow is one network flow as posted, or, when listed, the totals of every
// flow posted for its (SrcApp, DestApp, VpcID, Hour).
type Flow struct {
	SrcApp, DestApp, VpcID string
	BytesTx, BytesRx       int64
	Hour                   int64 // hours since the Unix epoch (UTC)
}
