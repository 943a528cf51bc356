package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
)

// BearerAuth returns an Authenticate func that accepts "Authorization: Bearer
// <key>" for any of keys and names the owner by a short stable hash of the key,
// so the key itself is never stored next to a session or written to a log.
//
// Empty keys are dropped (an unset ${ENV} must not open the door to an empty
// token); with no key left every request is refused.
func BearerAuth(keys []string) func(*http.Request) (string, error) {
	var digests [][sha256.Size]byte
	for _, k := range keys {
		if k != "" {
			digests = append(digests, sha256.Sum256([]byte(k)))
		}
	}
	return func(r *http.Request) (string, error) {
		token, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok {
			return "", Errorf(CodeUnauthorized, "missing bearer token")
		}
		d := sha256.Sum256([]byte(token))
		if !matchAny(digests, d) {
			return "", Errorf(CodeUnauthorized, "invalid API key")
		}
		return OwnerOfKey(token), nil
	}
}

// OwnerOfKey is the owner name BearerAuth gives a key: "key-" and the first 12
// hex digits of its SHA-256.
func OwnerOfKey(key string) string {
	d := sha256.Sum256([]byte(key))
	return "key-" + hex.EncodeToString(d[:6])
}

// matchAny compares d with every digest in constant time and without stopping
// early, so timing tells neither which key matched nor how much of it.
// Comparing fixed-size digests also hides the keys' lengths.
func matchAny(digests [][sha256.Size]byte, d [sha256.Size]byte) bool {
	found := 0
	for i := range digests {
		found |= subtle.ConstantTimeCompare(digests[i][:], d[:])
	}
	return found == 1
}

// bearerToken extracts the token of an "Authorization: Bearer <token>" value;
// the scheme is case-insensitive (RFC 9110).
func bearerToken(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
