// Package sign implements SDK-HMAC-SHA256, the API Gateway's AK/SK
// signature scheme: kmsapi signs requests with it and kmsfake verifies them.
package sign

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The official SDK signer is the reference:
// testdata/sdk-hmac-sha256-vectors.json holds headers it produced.
const (
	signAlgorithm  = "SDK-HMAC-SHA256"
	HeaderSdkDate  = "X-Sdk-Date"
	HeaderSecToken = "X-Security-Token"
	sdkDateFormat  = "20060102T150405Z"
)

// Sign adds X-Sdk-Date (from now) and the Authorization header to req. body
// must be the exact bytes that will be sent. The security token, when
// non-empty, is added as X-Security-Token and signed with the rest.
func Sign(req *http.Request, body []byte, ak, sk, securityToken string, now time.Time) {
	if securityToken != "" {
		req.Header.Set(HeaderSecToken, securityToken)
	}
	date := now.UTC().Format(sdkDateFormat)
	req.Header.Set(HeaderSdkDate, date)
	signed := SignedHeaders(req.Header)
	sig := Signature(req, body, signed, sk, date)
	req.Header.Set("Authorization", fmt.Sprintf("%s Access=%s, SignedHeaders=%s, Signature=%s",
		signAlgorithm, ak, strings.Join(signed, ";"), sig))
}

// SignedHeaders lists the headers the SDK signs: every header set, lower-cased
// and sorted, except Content-Type and names with an underscore.
func SignedHeaders(h http.Header) []string {
	names := make([]string, 0, len(h))
	for k := range h {
		lk := strings.ToLower(k)
		if lk == "content-type" || lk == "authorization" || strings.Contains(lk, "_") {
			continue
		}
		names = append(names, lk)
	}
	slices.Sort(names)
	return names
}

// Signature computes the hex signature of req over the given signed headers
// (lower-case names), to verify a request with.
func Signature(req *http.Request, body []byte, signedHeaders []string, sk, sdkDate string) string {
	cr := canonicalRequest(req, body, signedHeaders)
	crHash := sha256.Sum256([]byte(cr))
	toSign := signAlgorithm + "\n" + sdkDate + "\n" + hex.EncodeToString(crHash[:])
	mac := hmac.New(sha256.New, []byte(sk))
	mac.Write([]byte(toSign))
	return hex.EncodeToString(mac.Sum(nil))
}

func canonicalRequest(req *http.Request, body []byte, signedHeaders []string) string {
	var headers strings.Builder
	for _, name := range signedHeaders {
		v := req.Header.Get(name)
		if name == "host" {
			v = cmp.Or(req.Host, req.URL.Host)
		}
		headers.WriteString(name + ":" + strings.TrimSpace(v) + "\n")
	}
	bodyHash := sha256.Sum256(body)
	return strings.Join([]string{req.Method, canonicalURI(req.URL), canonicalQuery(req.URL.Query()),
		headers.String(), strings.Join(signedHeaders, ";"), hex.EncodeToString(bodyHash[:])}, "\n")
}

func canonicalURI(u *url.URL) string {
	segments := strings.Split(u.EscapedPath(), "/")
	for i, s := range segments {
		if raw, err := url.PathUnescape(s); err == nil {
			s = raw
		}
		segments[i] = escape(s)
	}
	p := strings.Join(segments, "/")
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

func canonicalQuery(q url.Values) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(q)) {
		for _, v := range slices.Sorted(slices.Values(q[k])) {
			parts = append(parts, escape(k)+"="+escape(v))
		}
	}
	return strings.Join(parts, "&")
}

// escape percent-encodes everything but A-Za-z0-9 and _-~. (space is %20).
func escape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '_' || c == '-' || c == '~' || c == '.' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// ParseAuthorization splits an SDK-HMAC-SHA256 Authorization header into its
// access key, signed header names and signature.
func ParseAuthorization(h string) (ak string, signedHeaders []string, signature string, err error) {
	rest, ok := strings.CutPrefix(h, signAlgorithm+" ")
	if !ok {
		return "", nil, "", fmt.Errorf("authorization is not %s", signAlgorithm)
	}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return "", nil, "", fmt.Errorf("malformed authorization part %q", part)
		}
		switch k {
		case "Access":
			ak = v
		case "SignedHeaders":
			signedHeaders = strings.Split(v, ";")
		case "Signature":
			signature = v
		}
	}
	if ak == "" || len(signedHeaders) == 0 || signature == "" {
		return "", nil, "", fmt.Errorf("authorization lacks Access, SignedHeaders or Signature")
	}
	return ak, signedHeaders, signature, nil
}
