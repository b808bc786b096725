package kmsapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/go-json-experiment/json"
)

// OIDCOptions configure OIDC workload identity: an ID token, such as the
// service account token Kubernetes projects into a pod, exchanged at IAM
// for a project-scoped token.
type OIDCOptions struct {
	IAMEndpoint string // override; default the IAM endpoint of each call's region (DefaultIAMEndpoint)
	IdpID       string // the identity provider's ID in IAM, sent as X-Idp-Id
	// IDToken returns the current ID token. It is called at every
	// exchange, since Kubernetes rotates a projected token file; its error
	// is reported as is and must not hold the token.
	IDToken func() (string, error)
	Now     func() time.Time
}

// oidcTokenPath exchanges an OpenID Connect ID token for an IAM token.
const oidcTokenPath = "/v3.0/OS-AUTH/id-token/tokens"

// NewOIDC exchanges the ID token for a project-scoped IAM token and sends
// it as X-Auth-Token, caching one token per project until shortly before
// it expires, as NewIAMPassword does.
func NewOIDC(o OIDCOptions) Authenticator {
	s := &tokenSource{}
	s.init(o.IAMEndpoint, o.Now, func(ctx context.Context, region, projectID, projectName string) (*iamToken, error) {
		return o.exchange(ctx, s, region, projectID, projectName)
	})
	return s
}

// exchange reads the ID token afresh and asks the IAM of region, through
// s, for a token scoped to the project (by ID or, to look one up, by
// name), or for an unscoped one for calls scoped to no project.
func (o *OIDCOptions) exchange(ctx context.Context, s *tokenSource, region, projectID, projectName string) (*iamToken, error) {
	if o.IDToken == nil {
		return nil, &Error{Endpoint: EndpointIAMToken, Err: errors.New("no ID token source")}
	}
	idToken, err := o.IDToken()
	if err != nil {
		return nil, &Error{Endpoint: EndpointIAMToken, Err: err}
	}
	type obj = map[string]any
	auth := obj{"id_token": obj{"id": idToken}}
	if projectID != "" {
		auth["scope"] = obj{"project": obj{"id": projectID}}
	} else if projectName != "" {
		auth["scope"] = obj{"project": obj{"name": projectName}}
	}
	body, _ := json.Marshal(obj{"auth": auth}) // strings only: cannot fail
	return s.post(ctx, region, oidcTokenPath, http.Header{"X-Idp-Id": {o.IdpID}}, body, projectID, projectName)
}
