package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// withAuth requires "Authorization: Bearer <Options.Token>" on every
// request when a token is set, /status included (see the package doc).
func (s *server) withAuth(next http.Handler) http.Handler {
	if s.o.Token == "" {
		return next
	}
	// Comparing hashes in constant time leaks neither the token's content
	// nor its length.
	want := sha256.Sum256([]byte(s.o.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := bearer(r.Header.Get("Authorization"))
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			reason := "wrong token"
			if !ok {
				reason = "no bearer token"
			}
			// Never log what was sent: it may be a near-miss of the token.
			s.log.Warn().Str("remote", r.RemoteAddr).Str("method", r.Method).Str("path", r.URL.Path).
				Str("reason", reason).Msg("api auth failed")
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard"`)
			writeError(w, http.StatusUnauthorized, KindUnauthorized,
				reason+": send \"Authorization: Bearer <token>\" with the API token (switchyard --api-token or SWITCHYARD_API_TOKEN)")
			return
		}
		next.ServeHTTP(w, r)
	})
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
