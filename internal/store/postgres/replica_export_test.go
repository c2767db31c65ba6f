package postgres

// ProbeReplica measures the replica's lag now, so that a test with a long
// ReadProbeInterval decides when the probes happen.
func ProbeReplica(s *Store) { s.reads.probe() }
