package main

import (
	"net/http"

	"github.com/rs/zerolog"
)

// edgeSettings are the settings of the handlers in front of the proxy.
type edgeSettings struct{}

// addEdgeSettings declares their flags and environment variables.
func addEdgeSettings(s *settings, e *edgeSettings) {}

// validate checks them after parsing.
func (e *edgeSettings) validate() error { return nil }

// wrap puts the edge handlers in front of the proxy handler h.
func (e *edgeSettings) wrap(h http.Handler, logger zerolog.Logger) (http.Handler, error) {
	return h, nil
}
