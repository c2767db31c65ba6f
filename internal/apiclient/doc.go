// Package apiclient is a Go client generated from openapi.yaml by
// oapi-codegen (see oapi-codegen.yaml; regenerate with make openapi). Its
// tests run it against the real server to show that the document is
// enough for generated clients.
package apiclient

//go:generate go tool oapi-codegen -config oapi-codegen.yaml ../../openapi.yaml
