package kmsapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/flight"
)

// tokenSource authenticates with IAM tokens (X-Auth-Token) that its issue
// function gets from IAM: a password login or an OIDC ID token exchange.
// It keeps one token per scope until shortly before the token expires,
// and asks IAM once for concurrent callers.
type tokenSource struct {
	iamEndpoint string // override; "" for the IAM endpoint of each call's region
	now         func() time.Time
	issue       func(ctx context.Context, region, projectID, projectName string) (*iamToken, error)
	h           authHTTP

	sf     flight.Group[string, *iamToken]
	mu     sync.Mutex
	tokens map[string]*iamToken // by scopeKey
}

// init sets what the authenticator built on s gives it: the IAM endpoint
// override, its clock (nil: time.Now) and how it gets a token.
func (s *tokenSource) init(iamEndpoint string, now func() time.Time, issue func(ctx context.Context, region, projectID, projectName string) (*iamToken, error)) {
	s.iamEndpoint = strings.TrimRight(iamEndpoint, "/")
	s.now = now
	if s.now == nil {
		s.now = time.Now
	}
	s.issue = issue
}

func (s *tokenSource) setEnv(e authEnv) { s.h.setEnv(e) }

// post sends body to path at the IAM of region and takes the token of the
// answer for the scope asked.
func (s *tokenSource) post(ctx context.Context, region, path string, header http.Header, body []byte, projectID, projectName string) (*iamToken, error) {
	header.Set("Content-Type", "application/json;charset=UTF-8")
	status, respHdr, answer, err := s.h.do(ctx, EndpointIAMToken, http.MethodPost, iamEndpointFor(s.iamEndpoint, region)+path, header, body)
	if err != nil {
		return nil, err
	}
	return s.issued(status, respHdr, answer, projectID, projectName)
}

type iamToken struct {
	value     string
	projectID string
	refreshAt time.Time
}

// scopeKey names the cache slot of a token: by project ID, by project name
// (for lookups), or the domain for calls scoped to no project.
func scopeKey(projectID, projectName string) string {
	switch {
	case projectID != "":
		return "id:" + projectID
	case projectName != "":
		return "name:" + projectName
	}
	return "domain"
}

func (s *tokenSource) Authenticate(ctx context.Context, req *http.Request, body []byte, projectID string) error {
	return s.authenticateIn(ctx, req, body, projectID, "")
}

// authenticateIn asks the IAM of region: the token of a project is issued
// by the IAM of the project's region.
func (s *tokenSource) authenticateIn(ctx context.Context, req *http.Request, _ []byte, projectID, region string) error {
	t, err := s.token(ctx, region, projectID, "")
	if err != nil {
		return err
	}
	req.Header.Set("X-Auth-Token", t.value)
	return nil
}

// lookupProject gets a token scoped to the project named after region and
// reads the project's ID from it; the token stays cached for KMS calls.
func (s *tokenSource) lookupProject(ctx context.Context, region string) (string, error) {
	t, err := s.token(ctx, region, "", region)
	if err != nil {
		return "", err
	}
	if t.projectID == "" {
		return "", &Error{Endpoint: EndpointIAMToken, StatusCode: http.StatusCreated, Err: fmt.Errorf("token for project %q names no project ID", region)}
	}
	return t.projectID, nil
}

func (s *tokenSource) token(ctx context.Context, region, projectID, projectName string) (*iamToken, error) {
	key := scopeKey(projectID, projectName)
	s.mu.Lock()
	t := s.tokens[key]
	s.mu.Unlock()
	if t != nil && s.now().Before(t.refreshAt) {
		return t, nil
	}
	return sharedFlight(ctx, &s.sf, key, EndpointIAMToken, func(ctx context.Context) (*iamToken, error) {
		return s.issue(ctx, region, projectID, projectName)
	})
}

// issued takes the token of a 2xx IAM answer (the X-Subject-Token header,
// token.expires_at and the project in the body) and caches it for the
// scope it was asked for.
func (s *tokenSource) issued(status int, header http.Header, body []byte, projectID, projectName string) (*iamToken, error) {
	value := header.Get("X-Subject-Token")
	if value == "" {
		return nil, &Error{Endpoint: EndpointIAMToken, StatusCode: status, Err: errors.New("answer lacks X-Subject-Token")}
	}
	expires, pid, err := decodeTokenBody(body)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if !expires.After(now) {
		return nil, &Error{Endpoint: EndpointIAMToken, StatusCode: status, Err: fmt.Errorf("token expired at %s on arrival; check the clock", expires.Format(time.RFC3339))}
	}
	if projectID != "" && pid != "" && pid != projectID {
		return nil, &Error{Endpoint: EndpointIAMToken, StatusCode: status, Err: fmt.Errorf("token is scoped to project %s, not %s", pid, projectID)}
	}
	t := &iamToken{value: value, projectID: pid, refreshAt: refreshAt(now, expires, 10, 30*time.Minute)}
	s.mu.Lock()
	if s.tokens == nil {
		s.tokens = map[string]*iamToken{}
	}
	s.tokens[scopeKey(projectID, projectName)] = t
	if projectName != "" && pid != "" {
		s.tokens[scopeKey(pid, "")] = t
	}
	s.mu.Unlock()
	return t, nil
}

func (s *tokenSource) Invalidate() {
	s.mu.Lock()
	clear(s.tokens)
	s.mu.Unlock()
}

// rejected drops the token req carried, wherever it is cached.
func (s *tokenSource) rejected(req *http.Request) {
	v := req.Header.Get("X-Auth-Token")
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, t := range s.tokens {
		if t.value == v {
			delete(s.tokens, k)
		}
	}
}
