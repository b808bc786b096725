package kmsapi

import (
	"cmp"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/flight"
	"github.com/kms-exporter/kms_exporter/internal/sign"
)

// Authenticator authenticates the requests of a Credential: one per
// credential kind, built by NewAKSK (permanent or temporary AK/SK),
// NewIAMPassword, NewECSMetadata or NewOIDC.
type Authenticator interface {
	// authenticate sets the auth headers on req, whose body is body, for
	// the project projectID ("" for calls not scoped to a project, e.g.
	// IAM). Tokens and temporary keys it fetches with h, from the IAM of
	// region.
	authenticate(ctx context.Context, h caller, req *http.Request, body []byte, projectID, region string) error
	// rejected drops what req was authenticated with after the API refused
	// it as expired, so a retry fetches fresh ones without dropping a newer
	// one another call got; it reports whether a retry would authenticate
	// with anything else (never with a fixed AK/SK). invalidate drops
	// everything cached, when the credential is paused.
	rejected(req *http.Request) (refetch bool)
	invalidate()
	// identity is the public identity the API locks after failed logins
	// (the AK, the IAM user; "" for none), and hint says what to check
	// after a 401.
	identity() (id, hint string)
}

// NewAKSK signs every request with an AK/SK pair; securityToken is set for
// temporary credentials and empty for permanent ones.
func NewAKSK(ak, sk, securityToken string) Authenticator {
	return &akskAuth{ak: ak, sk: sk, token: securityToken}
}

type akskAuth struct{ ak, sk, token string }

func (a *akskAuth) authenticate(_ context.Context, _ caller, req *http.Request, body []byte, _, _ string) error {
	sign.Sign(req, body, a.ak, a.sk, a.token, time.Now())
	return nil
}

func (a *akskAuth) rejected(*http.Request) bool { return false }
func (a *akskAuth) invalidate()                 {}

const akskHint = "check access_key and secret_key (and security_token)"

func (a *akskAuth) identity() (string, string) { return "aksk\x00" + a.ak, akskHint }

// refreshAt is when a cached secret that expires at expires is replaced:
// 1/fraction of its lifetime before, but no earlier than maxMargin before.
// IAM tokens (24 h) use a tenth capped at 30 min, metadata keys (1 h) half
// capped at 15 min.
func refreshAt(now, expires time.Time, fraction int, maxMargin time.Duration) time.Time {
	margin := min(expires.Sub(now)/time.Duration(fraction), maxMargin)
	return expires.Add(-margin)
}

// sharedFlight runs fn once for concurrent callers of key; it runs on its
// own context, so a caller with a short deadline does not fail the others.
func sharedFlight[K comparable, T any](ctx context.Context, g *flight.Group[K, T], key K, endpoint string, fn func(context.Context) (T, error)) (T, error) {
	v, err := g.Do(ctx, key, fn)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return v, &Error{Endpoint: endpoint, Err: err}
	}
	return v, err
}

// ECSMetadataOptions configure ECS agency credentials.
type ECSMetadataOptions struct {
	Endpoint   string       // default http://169.254.169.254
	HTTPClient *http.Client // default one that never goes through a proxy
	Now        func() time.Time
}

// NewECSMetadata signs with the temporary AK/SK of the ECS agency, read from
// the metadata service and refreshed well before they expire (when half
// their lifetime, at most 15 minutes, is left).
func NewECSMetadata(o ECSMetadataOptions) Authenticator {
	o.Endpoint = strings.TrimRight(cmp.Or(o.Endpoint, "http://169.254.169.254"), "/")
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		// The link-local metadata service is called directly: a proxy from
		// the environment must not see the request.
		o.HTTPClient = &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				Proxy:                 nil,
				DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
				ResponseHeaderTimeout: 10 * time.Second,
				MaxIdleConnsPerHost:   2,
				IdleConnTimeout:       90 * time.Second,
			},
		}
	}
	return &ecsAuth{o: o}
}

type ecsAuth struct {
	o   ECSMetadataOptions
	sf  flight.Group[struct{}, *securityKey]
	mu  sync.Mutex
	cur *securityKey
}

func (a *ecsAuth) identity() (string, string) {
	return "ecs\x00" + a.o.Endpoint, "check the ECS agency of this instance"
}

func (a *ecsAuth) authenticate(ctx context.Context, h caller, req *http.Request, body []byte, _, _ string) error {
	a.mu.Lock()
	k := a.cur
	a.mu.Unlock()
	if k == nil || !a.o.Now().Before(k.refreshAt) {
		var err error
		h.client = a.o.HTTPClient // the metadata service's, never a proxy
		k, err = sharedFlight(ctx, &a.sf, struct{}{}, EndpointECSMetadata, func(ctx context.Context) (*securityKey, error) { return a.fetch(ctx, h) })
		if err != nil {
			return err
		}
	}
	// Signed on the same clock that judges expiry (time.Now unless a test sets it).
	sign.Sign(req, body, k.AK, k.SK, k.Token, a.o.Now())
	return nil
}

func (a *ecsAuth) fetch(ctx context.Context, h caller) (*securityKey, error) {
	var tok []byte
	// The session token is optional: older metadata services lack it.
	err := h.do(ctx, &request{endpoint: EndpointECSMetadata, method: http.MethodPut, url: a.o.Endpoint + "/meta-data/latest/api/token",
		header: http.Header{"X-Metadata-Token-Ttl-Seconds": {"21600"}}, decode: func(_ *http.Response, body io.Reader) (err error) {
			tok, err = io.ReadAll(body)
			return err
		}})
	if ctx.Err() != nil {
		return nil, &Error{Endpoint: EndpointECSMetadata, Err: ctx.Err()}
	}
	hdr := http.Header{}
	if t := strings.TrimSpace(string(tok)); err == nil && t != "" && len(t) < 4096 {
		hdr.Set("X-Metadata-Token", t)
	}
	var sk securityKey
	err = h.do(ctx, &request{endpoint: EndpointECSMetadata, method: http.MethodGet, url: a.o.Endpoint + "/openstack/latest/securitykey", header: hdr,
		decode: func(_ *http.Response, body io.Reader) (err error) {
			sk, err = decodeSecurityKey(body)
			return err
		}})
	if err != nil {
		return nil, err
	}
	now := a.o.Now()
	if !sk.Expires.After(now) {
		return nil, decodeError(EndpointECSMetadata, "credential expired at %s on arrival; check the clock", sk.Expires.Format(time.RFC3339))
	}
	sk.refreshAt = refreshAt(now, sk.Expires, 2, 15*time.Minute)
	a.mu.Lock()
	a.cur = &sk
	a.mu.Unlock()
	return &sk, nil
}

func (a *ecsAuth) invalidate() {
	a.mu.Lock()
	a.cur = nil
	a.mu.Unlock()
}

func (a *ecsAuth) rejected(req *http.Request) bool {
	ak, _, _, err := sign.ParseAuthorization(req.Header.Get("Authorization"))
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur != nil && (err != nil || a.cur.AK == ak) {
		a.cur = nil
	}
	return true
}
