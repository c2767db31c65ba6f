// Package tlsfiles serves a certificate and key read from PEM files
// (TLS_CERT_FILE, TLS_KEY_FILE) and reads them again when they change, so
// that a certificate renewed in place (certbot, cert-manager's secret
// volume, an operator's copy) is served by the next connections without a
// restart.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// CheckEvery is how often, at most, a handshake looks at the files.
const CheckEvery = time.Second

// Pair is a certificate and its key, kept in step with their files.
type Pair struct {
	certFile, keyFile string
	// OnReload, when set, is called with the certificate each time the
	// files are read again and make a valid pair; OnError with the error
	// each time changed files do not (the previous pair is kept). Both are
	// called from a handshake, one at a time.
	OnReload func(*tls.Certificate)
	OnError  func(error)

	now     func() time.Time
	cert    atomic.Pointer[tls.Certificate]
	checked atomic.Int64 // unix nanoseconds of the last look at the files

	mu    sync.Mutex // one look at the files at a time
	stamp stamp      // the files as last read, whether they loaded or not
	// statFailure is the last failure to find the files, said once.
	statFailure string
	// loadFailure is the last failure to load the files as stamp has
	// them ("" once they loaded): such files are read again at each look,
	// as what makes them load (a chmod, a chown) may not change the stamp,
	// and the failure is said again only when it or the stamp changes.
	loadFailure string
}

// stamp tells whether either file changed: the file each name leads to
// (a renamed or re-linked file, as a Kubernetes secret volume swaps its
// files), its size and its modification time.
type stamp struct{ cert, key os.FileInfo }

func (s stamp) same(o stamp) bool {
	eq := func(a, b os.FileInfo) bool {
		return a != nil && b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
	}
	return eq(s.cert, o.cert) && eq(s.key, o.key)
}

// Load reads the pair from its files: an error names the file at fault, so
// that serve refuses to start on a missing file, a file that holds no PEM
// certificate or key, or a key that is not the certificate's.
func Load(certFile, keyFile string) (*Pair, error) {
	p := &Pair{certFile: certFile, keyFile: keyFile, now: time.Now}
	st, err := p.stat()
	if err != nil {
		return nil, err
	}
	c, err := load(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	p.stamp = st
	p.cert.Store(c)
	p.checked.Store(p.now().UnixNano())
	return p, nil
}

func (p *Pair) stat() (stamp, error) {
	c, err := os.Stat(p.certFile)
	if err != nil {
		return stamp{}, fmt.Errorf("TLS_CERT_FILE: %w", err)
	}
	k, err := os.Stat(p.keyFile)
	if err != nil {
		return stamp{}, fmt.Errorf("TLS_KEY_FILE: %w", err)
	}
	return stamp{c, k}, nil
}

// load reads and checks the pair; the leaf is parsed (for its expiry).
func load(certFile, keyFile string) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		// crypto/tls's errors name neither file: say which two were read.
		return nil, fmt.Errorf("TLS_CERT_FILE %s and TLS_KEY_FILE %s: %w", certFile, keyFile, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("TLS_CERT_FILE %s: %w", certFile, err)
		}
	}
	return &c, nil
}

// Certificate is the pair served now.
func (p *Pair) Certificate() *tls.Certificate { return p.cert.Load() }

// GetCertificate is tls.Config's GetCertificate: the pair served now,
// after a look at the files when the last one is CheckEvery old. Files
// that changed are read again; when they do not make a valid pair (a
// renewal half written, a key that is not the new certificate's) the
// previous pair goes on being served and OnError hears of it once for
// that state of the files and failure: they are read again at each look
// until they load, since a key made readable (chmod, chown) changes
// neither its size nor its modification time.
// A handshake that finds another one looking at the files does not wait.
func (p *Pair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	now := p.now().UnixNano()
	if now-p.checked.Load() >= int64(CheckEvery) && p.mu.TryLock() {
		p.check(now)
		p.mu.Unlock()
	}
	return p.cert.Load(), nil
}

// check looks at the files (mu held).
func (p *Pair) check(now int64) {
	p.checked.Store(now)
	st, err := p.stat()
	if err != nil {
		// A file missing (a renewal that deletes, then writes) or out of
		// reach: said once, and the files are read again when they are
		// back, whatever they then look like.
		p.stamp = stamp{}
		if msg := err.Error(); msg != p.statFailure {
			p.statFailure = msg
			p.fail(err)
		}
		return
	}
	p.statFailure = ""
	if st.same(p.stamp) && p.loadFailure == "" {
		return
	}
	c, err := load(p.certFile, p.keyFile)
	if err != nil {
		if msg := err.Error(); !st.same(p.stamp) || msg != p.loadFailure {
			p.loadFailure = msg
			p.fail(err)
		}
		p.stamp = st
		return
	}
	p.stamp, p.loadFailure = st, ""
	p.cert.Store(c)
	if p.OnReload != nil {
		p.OnReload(c)
	}
}

func (p *Pair) fail(err error) {
	if p.OnError != nil {
		p.OnError(err)
	}
}
