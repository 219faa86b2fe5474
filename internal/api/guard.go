package api

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// The API's guards against web pages. A browser visiting another site can
// be made to send requests to the API: with the Basic credentials it holds
// for the status page, or to a tokenless API on loopback. Two guards keep
// that from changing anything or reading anything:
//
//   - withLoopbackHost (no token only): the Host must be a loopback name or
//     address, so that a page cannot reach the API through a DNS name of its
//     own that resolves to 127.0.0.1 (DNS rebinding) and read its answers
//     as same-origin.
//   - withCSRFGuard (every state-changing request): refused when the
//     browser says it comes from another site (Sec-Fetch-Site, Origin), and
//     accepted only when it carries what a cross-site form or simple
//     request cannot: Content-Type application/json, an X-Switchyard-User
//     header or a bearer token. Those make a browser ask first (CORS
//     preflight), which the API never grants.

// withLoopbackHost refuses, when no token is set, a request whose Host is
// not localhost or a loopback address.
func (s *server) withLoopbackHost(next http.Handler) http.Handler {
	if s.o.Token != "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			s.log.Warn().Str("remote", r.RemoteAddr).Str("host", r.Host).Str("path", r.URL.Path).Msg("api: refused a request for a non-loopback host")
			writeError(w, http.StatusMisdirectedRequest, KindForbidden, fmt.Sprintf(
				"Host %q is not localhost or a loopback address: without an API token the API answers only those "+
					"(a web page must not reach it through a DNS name of its own); call it as http://127.0.0.1:PORT, or set --api-token",
				shorten(r.Host, 80)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackHost says whether a Host header names this machine's loopback:
// localhost (or a name under .localhost, which resolvers must keep on
// loopback), 127.0.0.0/8 or ::1, with or without a port.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// withCSRFGuard refuses state-changing requests that a page on another site
// could have made a browser send.
func (s *server) withCSRFGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		if msg := crossSite(r); msg != "" {
			s.log.Warn().Str("remote", r.RemoteAddr).Str("path", r.URL.Path).Str("origin", r.Header.Get("Origin")).
				Str("sec_fetch_site", r.Header.Get("Sec-Fetch-Site")).Msg("api: refused a cross-site request")
			writeError(w, http.StatusForbidden, KindForbidden, msg)
			return
		}
		if !deliberate(r) {
			writeError(w, http.StatusUnsupportedMediaType, KindUnsupportedMedia, fmt.Sprintf(
				"%s %s: send a JSON body with Content-Type: application/json (or the bare id with an %s header or a bearer token); "+
					"a form on another web page can send neither, which is why the API requires one",
				r.Method, r.URL.Path, UserHeader))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// crossSite says why a request comes from another site, or "".
func crossSite(r *http.Request) string {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return fmt.Sprintf("refused: the browser sent this request from another site (Sec-Fetch-Site: %s); "+
			"the API changes nothing for other web pages", shorten(site, 40))
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return fmt.Sprintf("refused: the request comes from the web page at %s, not from the API's own origin; "+
				"the API changes nothing for other web pages", shorten(o, 80))
		}
	}
	return ""
}

// deliberate says whether a request carries something a cross-site form or
// simple request cannot: a JSON content type, UserHeader or a bearer token.
func deliberate(r *http.Request) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "application/json" {
		return true
	}
	if r.Header.Get(UserHeader) != "" {
		return true
	}
	_, ok := bearer(r.Header.Get("Authorization"))
	return ok
}
