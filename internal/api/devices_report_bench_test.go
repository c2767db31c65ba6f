package api

import (
	"syscall"
	"testing"
)

// reportBenchBodies are typical report bodies: the documented example, a
// string metric with UTF-8 text, and one with escapes.
var reportBenchBodies = []struct{ name, body string }{
	{"float", `{"name":"cpu_temp","value":54.5,"units":"C","type":"float","slope":"both","ttl":60}`},
	{"string", `{"name":"ct.ipmi.sensor_state","value":"ok — nominal","units":"état","type":"string","slope":"zero","ttl":180}`},
	{"escaped", `{"name":"ct.snmp.if\"eth0\"","value":12,"units":"bytes\/s","type":"uint32","slope":"both","ttl":60}`},
}

// BenchmarkParseReport decodes report bodies as PUT /mrd/{id}/metrics
// does (one parser, its decoders reused). docs/decoders.md has the figures.
//
//	go test ./internal/api -run '^$' -bench '^BenchmarkParseReport$' -benchmem
func BenchmarkParseReport(b *testing.B) {
	var p reportParser
	for _, c := range reportBenchBodies {
		body := []byte(c.body)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := cpuNanos()
			for b.Loop() {
				if _, err := p.parse(body); err != nil {
					b.Fatal(err)
				}
			}
			// CPU time per operation: on a shared machine wall time also
			// counts the time other processes had the CPU.
			b.ReportMetric(float64(cpuNanos()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuNanos is the CPU time (user and system) used by the process so far.
func cpuNanos() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
