package postgres

// DeviceReportsQueued is how many device metric reports wait for a commit
// slot, so that tests can hold a batch open until they have all queued.
func DeviceReportsQueued(d *Devices) int {
	d.writer.mu.Lock()
	defer d.writer.mu.Unlock()
	return len(d.writer.queue)
}
