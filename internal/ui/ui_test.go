package ui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// sourcesDigest hashes web/ as web/build.mjs does: every file but
// node_modules, in path order, as path NUL content NUL.
func sourcesDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	for _, f := range sourceFiles(t, dir) {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		h.Write([]byte(f + "\x00"))
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sourceFiles lists the files of dir but node_modules, slash-separated, in
// order.
func sourceFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "node_modules" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files) // JavaScript's sort: by UTF-16 code units, the same for these ASCII names
	return files
}

// TestBundleMatchesSources fails when web/ changed and dist/ was not
// rebuilt: the bundle records the digest of the sources it was built from.
func TestBundleMatchesSources(t *testing.T) {
	recorded, err := os.ReadFile("dist/SOURCES.sha256")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(recorded))
	if got := sourcesDigest(t, "web"); got != want {
		t.Fatalf("internal/ui/dist was built from other sources (recorded %s, web/ is %s): run make ui and commit dist", want, got)
	}
	for _, f := range []string{"dist/app.js", "dist/style.css"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b[:min(len(b), 200)], []byte("sources sha256 "+want)) {
			t.Errorf("%s does not carry the digest %s in its banner", f, want)
		}
	}
}

// TestBundleRebuilds rebuilds the bundle from web/ with the pinned esbuild
// (npm ci in a copy) and compares it with the committed dist/, byte for
// byte. It needs npm and the registry (or npm's cache): without them it is
// skipped, and TestBundleMatchesSources still catches stale sources.
func TestBundleRebuilds(t *testing.T) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm not found: the rebuild check is skipped (TestBundleMatchesSources still compares the sources' digest)")
	}
	if testing.Short() {
		t.Skip("-short: the rebuild check runs npm ci")
	}
	work := t.TempDir()
	web := filepath.Join(work, "web")
	for _, f := range sourceFiles(t, "web") {
		b, err := os.ReadFile(filepath.Join("web", filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(web, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--prefer-offline")
	install.Dir = web
	if out, err := install.CombinedOutput(); err != nil {
		t.Skipf("npm ci failed (no registry and no cache?): the rebuild check is skipped: %v\n%s", err, out)
	}
	out := filepath.Join(work, "dist")
	build := exec.CommandContext(ctx, "node", "build.mjs", out)
	build.Dir = web
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("node build.mjs: %v\n%s", err, b)
	}
	committed := listFiles(t, "dist")
	rebuilt := listFiles(t, out)
	if strings.Join(committed, " ") != strings.Join(rebuilt, " ") {
		t.Fatalf("files differ: committed %v, rebuilt %v", committed, rebuilt)
	}
	for _, f := range committed {
		a, _ := os.ReadFile(filepath.Join("dist", f))
		b, _ := os.ReadFile(filepath.Join(out, f))
		if !bytes.Equal(a, b) {
			t.Errorf("dist/%s differs from a rebuild (%d and %d bytes): run make ui and commit dist", f, len(a), len(b))
		}
	}
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string, header ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	// Every page is the application's index, with the policy.
	for _, p := range []string{"/ui/", "/ui/measurements", "/ui/devices", "/ui/flows", "/ui/runs", "/ui/collections", "/ui/index.html", "/ui/nowhere/deeper"} {
		res := get(p)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Errorf("%s: %d %s", p, res.StatusCode, res.Header.Get("Content-Type"))
		}
		if res.Header.Get("Content-Security-Policy") != CSP {
			t.Errorf("%s: Content-Security-Policy = %q", p, res.Header.Get("Content-Security-Policy"))
		}
	}
	// Relative, so that it stays under a reverse proxy's prefix.
	if res := get("/ui?window=day"); res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "ui/?window=day" {
		t.Errorf("/ui: %d Location %q", res.StatusCode, res.Header.Get("Location"))
	}
	// Each page's copy of index.html links relative to its depth.
	for p, want := range map[string][]string{
		"/ui/":                {`href="./style.css"`, `src="./app.js"`, `href="./measurements"`, `href="../docs"`},
		"/ui/flows":           {`href="./style.css"`, `src="./app.js"`, `href="./"`, `href="../docs"`},
		"/ui/flows/":          {`href="../style.css"`, `src="../app.js"`, `href="../"`, `href="../../docs"`},
		"/ui/devices/a":       {`href="../style.css"`, `src="../app.js"`, `href="../measurements"`, `href="../../docs"`},
		"/ui/devices/a%2Fb/c": {`href="../../style.css"`},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+p, nil)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s: index.html has no %s:\n%s", p, w, b)
			}
		}
		if again := get(p, "If-None-Match", res.Header.Get("ETag")); again.StatusCode != http.StatusNotModified {
			t.Errorf("%s with its ETag: %d, want 304", p, again.StatusCode)
		}
	}
	// Deeper than two levels: no page, and no copy built for it.
	for _, p := range []string{"/ui/a/b/c/d", "/ui/" + strings.Repeat("/", 10000)} {
		if res := get(p); res.StatusCode != http.StatusNotFound {
			t.Errorf("%.40s: %d, want 404", p, res.StatusCode)
		}
	}
	if a, b := get("/ui/flows").Header.Get("ETag"), get("/ui/flows/").Header.Get("ETag"); a == b {
		t.Errorf("two depths' copies share the ETag %s", a)
	}
	for p, ct := range map[string]string{"/ui/app.js": "text/javascript; charset=utf-8", "/ui/style.css": "text/css; charset=utf-8"} {
		res := get(p)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != ct || res.Header.Get("ETag") == "" {
			t.Errorf("%s: %d %q ETag %q", p, res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("ETag"))
		}
		if again := get(p, "If-None-Match", res.Header.Get("ETag")); again.StatusCode != http.StatusNotModified {
			t.Errorf("%s with its ETag: %d, want 304", p, again.StatusCode)
		}
	}
	if res := get("/ui/nothing.js"); res.StatusCode != http.StatusNotFound {
		t.Errorf("/ui/nothing.js: %d, want 404", res.StatusCode)
	}
	res, err := http.Post(srv.URL+"/ui/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /ui/: %d Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
}

// TestIndexHasNoInlineCode: the policy forbids inline script and style, so
// the page must not need them.
func TestIndexHasNoInlineCode(t *testing.T) {
	b, err := os.ReadFile("dist/index.html")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, bad := range []string{"<script>", "<style", " style=", " onclick=", " onload=", "http://", "https://"} {
		if strings.Contains(s, bad) {
			t.Errorf("index.html contains %q", bad)
		}
	}
}
