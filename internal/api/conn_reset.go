package api

import (
	"context"
	"net"
)

// connKey is the request context's key for its connection (ConnContext).
type connKey struct{}

// ConnContext is the http.Server ConnContext of the API's server (serve
// sets it): it keeps each connection in its requests' contexts, so that an
// HTTP/1.0 answer can be reset rather than ended if it is cut (resetHTTP10).
// Without it the reset is done only where the handler cuts the answer
// itself (cutConnection).
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// rawConn is c, or the connection under c's TLS when c is a *tls.Conn
// (TLS_CERT_FILE): where a reset is set, and what a cut answer closes, so
// that no TLS close_notify tells the client the answer ended whole (an
// HTTP/1.0 answer's end is its connection's).
func rawConn(c net.Conn) net.Conn {
	if t, ok := c.(interface{ NetConn() net.Conn }); ok {
		return t.NetConn()
	}
	return c
}

// linger is what resetHTTP10 needs of a connection (*net.TCPConn).
type linger interface{ SetLinger(sec int) error }

// resetHTTP10 makes an HTTP/1.0 request's connection (http10, as
// requestInfo has it; ctx the request's, which ConnContext gave the
// connection) reset (SO_LINGER 0) rather than close while its handler
// runs, and puts the default back when the handler returns. An HTTP/1.0 answer has no chunked encoding and most
// of ours no Content-Length (exports, collections, anything larger than
// net/http's buffer): its body ends where the connection does. When a
// write misses its deadline (WRITE_TIMEOUT, EXPORT_MIN_RATE), net/http
// closes the connection itself, and the shutdown's Close closes every one:
// a plain close then reads as the end of a complete answer (curl -0 exits
// 0, nginx, which proxies in HTTP/1.0 by default, ends its own answer
// cleanly), a reset as an error. Once the handler has returned, what is
// left in net/http's buffer belongs to a whole answer, which a plain close
// delivers.
func resetHTTP10(ctx context.Context, http10 bool) (restore func()) {
	if !http10 {
		return func() {}
	}
	conn, _ := ctx.Value(connKey{}).(net.Conn)
	c, ok := rawConn(conn).(linger)
	if !ok || c.SetLinger(0) != nil {
		return func() {}
	}
	// An error here means the connection is gone (hijacked and closed by
	// cutConnection, or closed by net/http): nothing left to restore.
	return func() { _ = c.SetLinger(-1) }
}
