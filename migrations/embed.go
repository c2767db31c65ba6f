// Package migrations embeds the goose SQL migrations so that the binary can
// migrate a database without the source tree. sqlc reads the same files as
// its schema, in lexical order, so file names are zero-padded.
package migrations

import "embed"

// FS holds every *.sql migration at its root.
//
//go:embed *.sql
var FS embed.FS
