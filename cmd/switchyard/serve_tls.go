package main

import (
	"context"
	"crypto/tls"
	"sync"

	"github.com/rs/zerolog"
)

// tlsSettings are the TLS settings of serve.
type tlsSettings struct{}

// addTLSSettings declares the TLS flags and environment variables.
func addTLSSettings(s *settings, t *tlsSettings) {}

// validate checks the TLS settings after parsing.
func (t *tlsSettings) validate() error { return nil }

// setup returns the proxy listener's TLS config (nil: plain HTTP) and starts
// whatever TLS needs beside it until ctx ends, reporting failures into errs.
func (t *tlsSettings) setup(ctx context.Context, stateDir string, logger zerolog.Logger, wg *sync.WaitGroup, errs chan<- error) (*tls.Config, error) {
	return nil, nil
}
