package main

import (
	"net"

	"github.com/switchyard/switchyard/proxy"
)

// httpSettings are the settings of the proxy's request path beyond issue 3's.
type httpSettings struct{}

// addHTTPSettings declares its flags and environment variables.
func addHTTPSettings(s *settings, h *httpSettings) {}

// validate checks them after parsing.
func (h *httpSettings) validate() error { return nil }

// apply copies them into the proxy's Config.
func (h *httpSettings) apply(c *proxy.Config) {}

// wrapListener wraps the proxy's listener (e.g. for the PROXY protocol).
func (h *httpSettings) wrapListener(ln net.Listener) (net.Listener, error) { return ln, nil }
