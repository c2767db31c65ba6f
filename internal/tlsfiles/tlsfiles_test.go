package tlsfiles

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/tlsfiles/tlsfilestest"
)

// clock is a Pair's clock moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// watched loads the pair of certFile and keyFile on a clock of the test's,
// recording what it reloads and the errors it reports.
type watched struct {
	*Pair
	clock    *clock
	reloaded []string // subjects
	errs     []string
}

func watch(t *testing.T, certFile, keyFile string) *watched {
	t.Helper()
	p, err := Load(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	w := &watched{Pair: p, clock: &clock{t: time.Now()}}
	p.now = w.clock.now
	p.checked.Store(w.clock.now().UnixNano())
	p.OnReload = func(c *tls.Certificate) { w.reloaded = append(w.reloaded, c.Leaf.Subject.CommonName) }
	p.OnError = func(err error) { w.errs = append(w.errs, err.Error()) }
	return w
}

// served is the subject of the certificate a handshake gets after the
// clock moved by d.
func (w *watched) served(t *testing.T, d time.Duration) string {
	t.Helper()
	w.clock.add(d)
	c, err := w.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || c == nil {
		t.Fatalf("GetCertificate: %v, %v", c, err)
	}
	return c.Leaf.Subject.CommonName
}

func TestLoadNamesTheFileAtFault(t *testing.T) {
	dir := t.TempDir()
	a := tlsfilestest.New(t, "a", time.Now().Add(time.Hour))
	b := tlsfilestest.New(t, "b", time.Now().Add(time.Hour))
	certFile, keyFile := a.Write(t, dir)
	otherKey := filepath.Join(dir, "other-key.pem")
	tlsfilestest.WriteFile(t, otherKey, b.KeyPEM)
	notPEM := filepath.Join(dir, "not.pem")
	tlsfilestest.WriteFile(t, notPEM, []byte("not a certificate\n"))
	missing := filepath.Join(dir, "missing.pem")
	for _, c := range []struct {
		name, cert, key, want string
	}{
		{"cert missing", missing, keyFile, "TLS_CERT_FILE: stat " + missing},
		{"key missing", certFile, missing, "TLS_KEY_FILE: stat " + missing},
		{"no certificate in the file", notPEM, keyFile, "failed to find any PEM data in certificate input"},
		{"no key in the file", certFile, notPEM, "failed to find any PEM data in key input"},
		{"another certificate's key", certFile, otherKey, "private key does not match public key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(c.cert, c.key)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load: %v, want an error with %q", err, c.want)
			}
		})
	}
	p, err := Load(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Certificate().Leaf.Subject.CommonName; got != "a" {
		t.Fatalf("serving %q, want a", got)
	}
}

// A renewal (both files replaced) is served by the first handshake once
// CheckEvery has passed since the last look at the files, not before.
func TestServesTheRenewedPair(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := tlsfilestest.New(t, "a", time.Now().Add(time.Hour)).Write(t, dir)
	w := watch(t, certFile, keyFile)
	if got := w.served(t, 0); got != "a" {
		t.Fatalf("serving %q, want a", got)
	}
	tlsfilestest.New(t, "b", time.Now().Add(2*time.Hour)).Write(t, dir)
	if got := w.served(t, CheckEvery/2); got != "a" {
		t.Fatalf("serving %q before CheckEvery passed, want a (the files were looked at)", got)
	}
	if got := w.served(t, CheckEvery/2); got != "b" {
		t.Fatalf("serving %q once CheckEvery passed, want b", got)
	}
	if got := w.served(t, CheckEvery); got != "b" || len(w.reloaded) != 1 || len(w.errs) != 0 {
		t.Fatalf("serving %q, reloaded %q, errors %q: want b reloaded once", got, w.reloaded, w.errs)
	}
}

// Files that change into something that is not a pair (the certificate
// renewed, its key not yet) leave the previous pair served, said once for
// that state of the files; once the key follows, the new pair is served.
func TestKeepsThePreviousPairUntilTheFilesMakeOne(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := tlsfilestest.New(t, "a", time.Now().Add(time.Hour)).Write(t, dir)
	w := watch(t, certFile, keyFile)
	b := tlsfilestest.New(t, "b", time.Now().Add(2*time.Hour))
	tlsfilestest.WriteFile(t, certFile, b.CertPEM)
	for i := range 3 {
		if got := w.served(t, CheckEvery); got != "a" {
			t.Fatalf("look %d: serving %q with b's certificate and a's key, want a", i, got)
		}
	}
	if len(w.errs) != 1 || !strings.Contains(w.errs[0], "private key does not match public key") || len(w.reloaded) != 0 {
		t.Fatalf("errors %q, reloaded %q: want one mismatch said, nothing reloaded", w.errs, w.reloaded)
	}
	tlsfilestest.WriteFile(t, keyFile, b.KeyPEM)
	if got := w.served(t, CheckEvery); got != "b" || len(w.reloaded) != 1 || len(w.errs) != 1 {
		t.Fatalf("serving %q, reloaded %q, errors %q: want b, reloaded once", got, w.reloaded, w.errs)
	}
}

// A file that goes missing is said once; when it is back the pair is read
// again.
func TestAMissingFileIsSaidOnce(t *testing.T) {
	dir := t.TempDir()
	a := tlsfilestest.New(t, "a", time.Now().Add(time.Hour))
	certFile, keyFile := a.Write(t, dir)
	w := watch(t, certFile, keyFile)
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := w.served(t, CheckEvery); got != "a" {
			t.Fatalf("serving %q without the key file, want a", got)
		}
	}
	if len(w.errs) != 1 || !strings.Contains(w.errs[0], "TLS_KEY_FILE") {
		t.Fatalf("errors %q, want the missing key file said once", w.errs)
	}
	b := tlsfilestest.New(t, "b", time.Now().Add(time.Hour))
	b.Write(t, dir)
	if got := w.served(t, CheckEvery); got != "b" || len(w.errs) != 1 {
		t.Fatalf("serving %q, errors %q: want b once the files are back", got, w.errs)
	}
}

// Handshakes at once, from many goroutines, while the files change (run
// with the race detector by make test).
func TestConcurrentHandshakesDuringARenewal(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := tlsfilestest.New(t, "a", time.Now().Add(time.Hour)).Write(t, dir)
	p, err := Load(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	b := tlsfilestest.New(t, "b", time.Now().Add(time.Hour))
	var wg sync.WaitGroup
	stop := time.Now().Add(CheckEvery + 500*time.Millisecond)
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				if c, err := p.GetCertificate(nil); err != nil || c == nil {
					t.Errorf("GetCertificate: %v, %v", c, err)
					return
				}
			}
		})
	}
	b.Write(t, dir)
	wg.Wait()
	if got := p.Certificate().Leaf.Subject.CommonName; got != "b" {
		t.Fatalf("serving %q after a renewal and %s of handshakes, want b", got, CheckEvery)
	}
}

// A renewal whose key the service cannot read yet (a new key file left
// 0600 to another user) is said once; once the key is made readable
// (chmod, chown), the new pair is served. Neither changes what the files'
// stamp holds (the file, its size, its modification time), so the files
// are read again while they fail to load, not only once they change.
// Run as root, which reads any file, the permission is stood in for by a
// key of the same size rewritten in place with its modification time put
// back: a change the stamp does not see either.
func TestAKeyMadeReadableIsServed(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := tlsfilestest.New(t, "a", time.Now().Add(time.Hour)).Write(t, dir)
	w := watch(t, certFile, keyFile)
	b := tlsfilestest.New(t, "b", time.Now().Add(2*time.Hour))
	tlsfilestest.WriteFile(t, certFile, b.CertPEM)
	asRoot := os.Geteuid() == 0
	if asRoot {
		junk := []byte(strings.Repeat("x", len(b.KeyPEM)))
		tlsfilestest.WriteFile(t, keyFile, junk)
	} else {
		tlsfilestest.WriteFile(t, keyFile, b.KeyPEM)
		if err := os.Chmod(keyFile, 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if got := w.served(t, CheckEvery); got != "a" {
			t.Fatalf("look %d: serving %q with b's key unreadable, want a", i, got)
		}
	}
	if len(w.errs) != 1 || len(w.reloaded) != 0 {
		t.Fatalf("errors %q, reloaded %q: want the unreadable key said once, nothing reloaded", w.errs, w.reloaded)
	}
	if asRoot {
		before, err := os.Stat(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, b.KeyPEM, 0o600); err != nil { // in place: the same file
			t.Fatal(err)
		}
		if err := os.Chtimes(keyFile, time.Time{}, before.ModTime()); err != nil {
			t.Fatal(err)
		}
	} else if err := os.Chmod(keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := w.served(t, CheckEvery); got != "b" || len(w.reloaded) != 1 || len(w.errs) != 1 {
		t.Fatalf("serving %q, reloaded %q, errors %q: want b once its key is readable, the failure said once", got, w.reloaded, w.errs)
	}
}
