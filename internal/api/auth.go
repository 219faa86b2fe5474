package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// withAuth requires the API token on every request when a token is set,
// /status and the status page included (see the package doc): as
// "Authorization: Bearer <token>", or as the password of HTTP Basic auth
// with any user name, which is what a browser can send.
func (s *server) withAuth(next http.Handler) http.Handler {
	if s.o.Token == "" {
		return next
	}
	// Comparing hashes in constant time leaks neither the token's content
	// nor its length.
	want := sha256.Sum256([]byte(s.o.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := token(r)
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			reason := "wrong token"
			if !ok {
				reason = "no token"
			}
			// Never log what was sent: it may be a near-miss of the token.
			s.log.Warn().Str("remote", r.RemoteAddr).Str("method", r.Method).Str("path", r.URL.Path).
				Str("reason", reason).Msg("api auth failed")
			// Both challenges, the client's likely scheme first. API clients
			// use Bearer. A browser answers only a Basic challenge: with its
			// login dialog on navigation, and silently, from the credentials
			// it already has, for the page's script, style sheet and fetch()
			// calls, which it does not always send unasked (Chromium does not
			// for credentials given in the URL).
			challenges := []string{`Bearer realm="switchyard"`, `Basic realm="switchyard", charset="UTF-8"`}
			if acceptsHTML(r) {
				challenges[0], challenges[1] = challenges[1], challenges[0]
			}
			w.Header().Set("WWW-Authenticate", challenges[0])
			w.Header().Add("WWW-Authenticate", challenges[1])
			writeError(w, http.StatusUnauthorized, KindUnauthorized,
				reason+": send \"Authorization: Bearer <token>\" with the API token (switchyard --api-token or SWITCHYARD_API_TOKEN); "+
					"a browser logs in with any user name and the token as the password")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// token returns the token a request carries: a bearer token, or the
// password of Basic credentials (the user name is ignored).
func token(r *http.Request) (string, bool) {
	if t, ok := bearer(r.Header.Get("Authorization")); ok {
		return t, true
	}
	if _, password, ok := r.BasicAuth(); ok && password != "" {
		return password, true
	}
	return "", false
}

// bearer returns the token of an "Authorization: Bearer <token>" value; the
// scheme is case-insensitive (RFC 7235).
func bearer(v string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
