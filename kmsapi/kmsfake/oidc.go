package kmsfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// IdentityProvider is an OpenID Connect identity provider configured in
// IAM, such as a CCE cluster: its ID tokens must name ClientID as their
// audience.
type IdentityProvider struct{ ID, ClientID string }

// idTokenPath exchanges an ID token for an IAM token.
const idTokenPath = "/v3.0/OS-AUTH/id-token/tokens"

// idTokenIssuer is the issuer the fake's ID tokens name, as a cluster's
// service account tokens do.
const idTokenIssuer = "https://kubernetes.default.svc.cluster.local"

// oidcIssuer signs the ID tokens of the fake's identity providers (HS256
// with a key of its own: only the fake checks them).
type oidcIssuer struct {
	key  []byte
	idps map[string]IdentityProvider
}

func newOIDCIssuer(idps []IdentityProvider) oidcIssuer {
	o := oidcIssuer{key: []byte(randomHex(32)), idps: map[string]IdentityProvider{}}
	for _, p := range idps {
		o.idps[p.ID] = p
	}
	return o
}

type idClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience []string `json:"aud"`
	Issued   int64    `json:"iat"`
	Expires  int64    `json:"exp"`
}

var b64 = base64.RawURLEncoding

// IDToken issues an ID token of the identity provider idpID for subject
// (e.g. system:serviceaccount:monitoring:kms-exporter), valid for ttl on
// the fake's clock: what Kubernetes writes into a projected token file.
// A token of an unknown provider is issued too, and refused at exchange.
func (s *Server) IDToken(idpID, subject string, ttl time.Duration) string {
	now := s.clock()
	aud := s.oidc.idps[idpID].ClientID
	payload, _ := json.Marshal(idClaims{idTokenIssuer, subject, []string{aud}, now.Unix(), now.Add(ttl).Unix()})
	signed := b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT","kid":"kmsfake"}`)) + "." + b64.EncodeToString(payload)
	return signed + "." + b64.EncodeToString(s.oidc.sign(signed))
}

func (o *oidcIssuer) sign(signed string) []byte {
	m := hmac.New(sha256.New, o.key)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

// verify returns the claims of an ID token of idp that is signed by the
// fake, for the provider's client and not expired at now.
func (o *oidcIssuer) verify(token string, idp IdentityProvider, now time.Time) (idClaims, bool) {
	var c idClaims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, false
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, o.sign(parts[0]+"."+parts[1])) {
		return c, false
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil || json.Unmarshal(payload, &c) != nil {
		return c, false
	}
	return c, c.Issuer == idTokenIssuer && slices.Contains(c.Audience, idp.ClientID) && now.Unix() < c.Expires
}

// exchangeIDToken answers POST /v3.0/OS-AUTH/id-token/tokens: the
// identity provider in X-Idp-Id, its ID token in the body, and a project
// scope (by ID or name) or none for an unscoped token.
func (s *Server) exchangeIDToken(rw *responder, r *http.Request, body []byte) {
	var req struct {
		Auth struct {
			IDToken struct {
				ID string `json:"id"`
			} `json:"id_token"`
			Scope scopeRequest `json:"scope"`
		} `json:"auth"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Auth.IDToken.ID == "" {
		rw.iamError(http.StatusBadRequest, "Bad Request", "Mandatory parameters are not specified.")
		return
	}
	idpID := r.Header.Get("X-Idp-Id")
	idp, ok := s.oidc.idps[idpID]
	switch {
	case idpID == "":
		rw.iamError(http.StatusBadRequest, "Bad Request", "The X-Idp-Id header is missing.")
		return
	case !ok:
		rw.iamError(http.StatusNotFound, "Not Found", "Could not find identity provider.")
		return
	}
	claims, valid := s.oidc.verify(req.Auth.IDToken.ID, idp, s.clock())
	if !valid {
		rw.iamError(http.StatusUnauthorized, "Unauthorized", "The ID token is invalid or has expired.")
		return
	}
	var p *project
	sc := req.Auth.Scope
	if sc.Project != nil || sc.Domain != nil {
		if p, ok = s.tokenScope(rw, sc.Project, sc.Domain, s.domainName); !ok {
			return
		}
	}
	s.grantToken(rw, grant{
		principal: "oidc:" + idp.ID + "/" + claims.Subject,
		userID:    userID(idp.ID, claims.Subject),
		userName:  claims.Subject,
		domain:    s.domainName,
		method:    "mapped",
		project:   p,
	})
}
