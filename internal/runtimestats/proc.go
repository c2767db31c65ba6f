package runtimestats

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// readProc reads the two files under root (normally /proc).
func readProc(root string) (procStat, error) {
	var ps procStat
	self, err := os.ReadFile(filepath.Join(root, "self", "stat"))
	if err != nil {
		return ps, err
	}
	if ps.processTicks, ps.rssPages, err = parseSelfStat(self); err != nil {
		return ps, err
	}
	sys, err := os.ReadFile(filepath.Join(root, "stat"))
	if err != nil {
		return ps, err
	}
	ps.totalTicks, ps.idleTicks, err = parseSystemStat(sys)
	return ps, err
}

// parseSelfStat reads utime, stime (fields 14, 15) and rss (field 24) of
// proc(5)'s /proc/[pid]/stat. The command name (field 2) is in parentheses
// and may itself hold spaces and parentheses, so fields are counted from
// the last ')'.
func parseSelfStat(b []byte) (ticks uint64, rssPages int64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("/proc/self/stat: no command name")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 22 {
		return 0, 0, fmt.Errorf("/proc/self/stat: %d fields after the command name, want at least 22", len(f))
	}
	utime, err1 := strconv.ParseUint(f[14-3], 10, 64)
	stime, err2 := strconv.ParseUint(f[15-3], 10, 64)
	rss, err3 := strconv.ParseInt(f[24-3], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return 0, 0, fmt.Errorf("/proc/self/stat: %w", err)
	}
	return utime + stime, max(rss, 0), nil
}

// parseSystemStat reads the aggregate "cpu" line of /proc/stat: user nice
// system idle iowait irq softirq steal [guest guest_nice]. guest and
// guest_nice are already counted in user and nice, so they are left out of
// the total.
func parseSystemStat(b []byte) (total, idle uint64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		if len(f) < 5 {
			return 0, 0, errors.New("/proc/stat: short cpu line")
		}
		var v [8]uint64
		for k := 0; k < len(v) && k+1 < len(f); k++ {
			if v[k], err = strconv.ParseUint(f[k+1], 10, 64); err != nil {
				return 0, 0, fmt.Errorf("/proc/stat: %w", err)
			}
		}
		for _, x := range v {
			total += x
		}
		return total, v[3] + v[4], nil
	}
	return 0, 0, errors.New("/proc/stat: no cpu line")
}
