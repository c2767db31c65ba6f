package runtimestats

import (
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/procfs"
)

// procStat is what one read of /proc/self/stat and /proc/stat gives.
// Every CPU figure is in clock ticks (USER_HZ) in both files, so ratios of
// deltas need neither the tick rate nor the number of CPUs.
type procStat struct {
	processTicks uint64 // utime + stime of this process, all threads
	totalTicks   uint64 // all CPU time of the machine, all CPUs, idle included
	idleTicks    uint64 // idle + iowait of the machine
	rssPages     int64  // resident set size, in pages
}

// readProc reads the two files of the proc(5) mounted at root (normally
// /proc).
func readProc(root string) (procStat, error) {
	fs, err := procfs.NewFS(root)
	if err != nil {
		return procStat{}, err
	}
	var ps procStat
	if ps.processTicks, ps.rssPages, err = readSelfStat(fs); err != nil {
		return ps, err
	}
	ps.totalTicks, ps.idleTicks, err = readSystemStat(fs)
	return ps, err
}

// readSelfStat reads utime, stime and rss of /proc/self/stat, which procfs
// leaves in ticks and pages.
func readSelfStat(fs procfs.FS) (ticks uint64, rssPages int64, err error) {
	p, err := fs.Self()
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/self: %w", err)
	}
	st, err := p.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/self/stat: %w", err)
	}
	return uint64(st.UTime + st.STime), int64(max(st.RSS, 0)), nil
}

// procfsUserHZ is the tick rate procfs divides /proc/stat's ticks by (its
// fixed USER_HZ, as in ProcStat.CPUTime). Multiplying back gives the
// kernel's tick counts, comparable with /proc/self/stat's.
const procfsUserHZ = 100

// readSystemStat reads the aggregate "cpu" line of /proc/stat: user nice
// system idle iowait irq softirq steal [guest guest_nice]. guest and
// guest_nice are already counted in user and nice, so they are left out of
// the total. procfs reads a missing column as 0: a line without idle time is
// one that lacks the idle column (a running kernel always has idled), or no
// aggregate line at all.
func readSystemStat(fs procfs.FS) (total, idle uint64, err error) {
	st, err := fs.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/stat: %w", err)
	}
	c := st.CPUTotal
	if c.Idle <= 0 {
		return 0, 0, errors.New("/proc/stat: no cpu line with user, nice, system and idle time")
	}
	for _, seconds := range []float64{c.User, c.Nice, c.System, c.Idle, c.Iowait, c.IRQ, c.SoftIRQ, c.Steal} {
		total += ticks(seconds)
	}
	return total, ticks(c.Idle) + ticks(c.Iowait), nil
}

func ticks(seconds float64) uint64 { return uint64(math.Round(max(seconds, 0) * procfsUserHZ)) }
