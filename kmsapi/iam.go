package kmsapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/kms-exporter/kms_exporter/internal/flight"
	"github.com/kms-exporter/kms_exporter/internal/regions"
)

// IAMPasswordOptions configure IAM user-token authentication.
type IAMPasswordOptions struct {
	IAMEndpoint string // override; default the IAM endpoint of each call's region (regions.IAMEndpoint)
	DomainName  string
	UserName    string
	Password    string
	Now         func() time.Time
}

// OIDCOptions configure OIDC workload identity: an ID token, such as the
// service account token Kubernetes projects into a pod, exchanged at IAM
// for a project-scoped token.
type OIDCOptions struct {
	IAMEndpoint string // override; default the IAM endpoint of each call's region (regions.IAMEndpoint)
	IdpID       string // the identity provider's ID in IAM, sent as X-Idp-Id
	// IDToken returns the current ID token. It is called at every
	// exchange, since Kubernetes rotates a projected token file; its error
	// is reported as is and must not hold the token.
	IDToken func() (string, error)
	Now     func() time.Time
}

type obj = map[string]any

// NewIAMPassword logs in with a password and sends the project-scoped token
// as X-Auth-Token, caching one token per project until shortly before it expires.
func NewIAMPassword(o IAMPasswordOptions) Authenticator {
	user := obj{"name": o.UserName, "password": o.Password, "domain": obj{"name": o.DomainName}}
	return newTokenSource(&tokenSource{
		iamEndpoint: o.IAMEndpoint, now: o.Now, path: "/v3/auth/tokens",
		auth: func() (obj, error) {
			return obj{"identity": obj{"methods": []string{"password"}, "password": obj{"user": user}}}, nil
		},
		unscoped: obj{"domain": obj{"name": o.DomainName}},
		id:       "iam\x00" + o.IAMEndpoint + "\x00" + o.DomainName + "\x00" + o.UserName,
		hint:     "check iam domain_name, user_name and password",
	})
}

// NewOIDC exchanges the ID token, read afresh each time, for IAM tokens as
// NewIAMPassword logs in for them; calls for no project get an unscoped one.
func NewOIDC(o OIDCOptions) Authenticator {
	return newTokenSource(&tokenSource{
		iamEndpoint: o.IAMEndpoint, now: o.Now, path: "/v3.0/OS-AUTH/id-token/tokens",
		header: http.Header{"X-Idp-Id": {o.IdpID}},
		auth: func() (obj, error) {
			if o.IDToken == nil {
				return nil, errors.New("no ID token source")
			}
			idToken, err := o.IDToken()
			return obj{"id_token": obj{"id": idToken}}, err
		},
		hint: "check oidc idp_id and id_token_file",
	})
}

// tokenSource authenticates with IAM tokens (X-Auth-Token). It keeps one
// token per scope until shortly before the token expires, and asks IAM once
// for concurrent callers.
type tokenSource struct {
	iamEndpoint string // override; "" for the IAM endpoint of each call's region
	now         func() time.Time
	path        string              // of the token request
	header      http.Header         // of the token request
	auth        func() (obj, error) // the request's auth object but its scope
	unscoped    obj                 // the scope for calls of no project; nil for none
	id, hint    string              // see Authenticator.identity

	sf     flight.Group[scope, *iamToken]
	mu     sync.Mutex
	tokens map[scope]*iamToken
}

// scope is what a token is for: a project by ID, or by name to look its ID
// up; neither for calls of no project.
type scope struct{ projectID, projectName string }

type iamToken struct {
	value     string
	projectID string
	refreshAt time.Time
}

func newTokenSource(s *tokenSource) *tokenSource {
	s.iamEndpoint = strings.TrimRight(s.iamEndpoint, "/")
	if s.now == nil {
		s.now = time.Now
	}
	h := http.Header{"Content-Type": {"application/json;charset=UTF-8"}}
	maps.Copy(h, s.header)
	s.header, s.tokens = h, map[scope]*iamToken{}
	return s
}

func (s *tokenSource) identity() (string, string) { return s.id, s.hint }

// authenticate asks the IAM of region: the token of a project is issued by
// the IAM of the project's region.
func (s *tokenSource) authenticate(ctx context.Context, h caller, req *http.Request, _ []byte, projectID, region string) error {
	t, err := s.token(ctx, h, region, scope{projectID: projectID})
	if err == nil {
		req.Header.Set("X-Auth-Token", t.value)
	}
	return err
}

func (s *tokenSource) token(ctx context.Context, h caller, region string, sc scope) (*iamToken, error) {
	s.mu.Lock()
	t := s.tokens[sc]
	s.mu.Unlock()
	if t != nil && s.now().Before(t.refreshAt) {
		return t, nil
	}
	return sharedFlight(ctx, &s.sf, sc, EndpointIAMToken, func(ctx context.Context) (*iamToken, error) {
		return s.login(ctx, h, region, sc)
	})
}

// login asks the IAM of region for a token for sc.
func (s *tokenSource) login(ctx context.Context, h caller, region string, sc scope) (t *iamToken, err error) {
	auth, err := s.auth()
	if err != nil {
		return nil, &Error{Endpoint: EndpointIAMToken, Err: err}
	}
	switch {
	case sc.projectID != "":
		auth["scope"] = obj{"project": obj{"id": sc.projectID}}
	case sc.projectName != "":
		auth["scope"] = obj{"project": obj{"name": sc.projectName}}
	case s.unscoped != nil:
		auth["scope"] = s.unscoped
	}
	body, _ := json.Marshal(obj{"auth": auth}) // strings only: cannot fail
	err = h.do(ctx, &request{endpoint: EndpointIAMToken, method: http.MethodPost, url: cmp.Or(s.iamEndpoint, regions.IAMEndpoint(region)) + s.path,
		header: s.header, body: body, decode: func(resp *http.Response, body io.Reader) (err error) {
			t, err = s.issued(resp, body, sc)
			return err
		}})
	return t, err
}

// issued takes the token of an IAM answer (the X-Subject-Token header,
// token.expires_at and the project in the body) and caches it for sc, and
// for a lookup by name also for the project's ID.
func (s *tokenSource) issued(resp *http.Response, body io.Reader, sc scope) (*iamToken, error) {
	value := resp.Header.Get("X-Subject-Token")
	if value == "" {
		return nil, decodeError(EndpointIAMToken, "answer lacks X-Subject-Token")
	}
	expires, pid, err := decodeTokenBody(body)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if !expires.After(now) {
		return nil, decodeError(EndpointIAMToken, "token expired at %s on arrival; check the clock", expires.Format(time.RFC3339))
	}
	if sc.projectID != "" && pid != "" && pid != sc.projectID {
		return nil, decodeError(EndpointIAMToken, "token is scoped to project %s, not %s", pid, sc.projectID)
	}
	t := &iamToken{value: value, projectID: pid, refreshAt: refreshAt(now, expires, 10, 30*time.Minute)}
	s.mu.Lock()
	s.tokens[sc] = t
	if sc.projectName != "" && pid != "" {
		s.tokens[scope{projectID: pid}] = t
	}
	s.mu.Unlock()
	return t, nil
}

func (s *tokenSource) invalidate() {
	s.mu.Lock()
	clear(s.tokens)
	s.mu.Unlock()
}

// rejected drops the token req carried, wherever it is cached.
func (s *tokenSource) rejected(req *http.Request) bool {
	v := req.Header.Get("X-Auth-Token")
	s.mu.Lock()
	defer s.mu.Unlock()
	maps.DeleteFunc(s.tokens, func(_ scope, t *iamToken) bool { return t.value == v })
	return true
}

// LookupProject returns the ID of the project named after region, from IAM:
// GET {iam}/v3/projects?name=<region>. With an IAM token credential it logs
// in scoped to that project name instead and reads the project from the
// token, which also leaves the token cached for the KMS calls.
func (c *Credential) LookupProject(ctx context.Context, region string) (id string, err error) {
	if region == "" {
		return "", &Error{Endpoint: EndpointIAMProjects, Err: errors.New("empty region")}
	}
	if l, ok := c.opts.Auth.(*tokenSource); ok {
		err = c.run(ctx, EndpointIAMToken, func(ctx context.Context) attempt {
			if _, err := c.waitLimit(ctx); err != nil {
				return attempt{err: &Error{Endpoint: EndpointIAMToken, Err: err}}
			}
			t, err := l.token(ctx, c.http, region, scope{projectName: region})
			if err == nil {
				if id = t.projectID; id == "" {
					err = &Error{Endpoint: EndpointIAMToken, StatusCode: http.StatusCreated, Err: fmt.Errorf("token for project %q names no project ID", region)}
				}
			}
			e, _ := errors.AsType[*Error](err)
			return attempt{err: err, retry: e != nil && retryableStatus(e.StatusCode)}
		})
		return id, err
	}
	err = c.do(ctx, &request{endpoint: EndpointIAMProjects, method: http.MethodGet,
		url: c.iamEndpoint(region) + "/v3/projects?name=" + url.QueryEscape(region),
		decode: func(_ *http.Response, body io.Reader) (err error) {
			id, err = projectNamed(body, region)
			return err
		}})
	return id, err
}

// maxProjectPages bounds the paging of ListProjects against a links.next
// that never ends.
var maxProjectPages = 100

// Project is an IAM project the credential may use: a region project
// ("cn-north-4"), a sub-project ("cn-north-4_payments") or a project without
// KMS ("MOS").
type Project struct {
	ID       string
	Name     string
	DomainID string
	ParentID string
	Enabled  bool // true when the API leaves it out
}

// ListProjects lists the projects the credential may use:
// GET {iam}/v3/auth/projects, signed (or with an IAM token scoped to the
// domain), following links.next. A next link to another host than the IAM
// endpoint is refused: the request would carry the credential's token there.
func (c *Credential) ListProjects(ctx context.Context) ([]Project, error) {
	iam := c.iamEndpoint("")
	base, err := url.Parse(iam)
	if err != nil {
		return nil, &Error{Endpoint: EndpointIAMProjectList, Err: withoutUserinfo(err)}
	}
	next := iam + "/v3/auth/projects"
	all := []Project{}
	seen := map[string]bool{}
	for range maxProjectPages {
		var page []Project
		var link string
		err := c.do(ctx, &request{endpoint: EndpointIAMProjectList, method: http.MethodGet, url: next,
			decode: func(_ *http.Response, body io.Reader) (err error) {
				page, link, err = decodeProjects(EndpointIAMProjectList, body)
				return err
			}})
		if err != nil {
			return nil, err
		}
		for _, p := range page {
			if !seen[p.ID] {
				seen[p.ID] = true
				all = append(all, p)
			}
		}
		if link == "" || len(page) == 0 {
			return all, nil
		}
		u, err := base.Parse(link)
		if err != nil || u.Scheme != base.Scheme || u.Host != base.Host {
			return nil, decodeError(EndpointIAMProjectList, "links.next %q is not on the IAM endpoint %s", link, redactURL(iam))
		}
		next = u.String()
	}
	return nil, decodeError(EndpointIAMProjectList, "more than %d pages of projects", maxProjectPages)
}

// decodeProjects reads the projects of an answer of endpoint (GET
// /v3/projects or /v3/auth/projects) and its links.next ("" for none).
func decodeProjects(endpoint string, body io.Reader) ([]Project, string, error) {
	var w struct {
		Projects *[]struct {
			ID       string `json:"id"`
			Name     string `json:"name"`
			DomainID string `json:"domain_id"`
			ParentID string `json:"parent_id"`
			Enabled  *bool  `json:"enabled"`
		} `json:"projects"`
		Links struct {
			Next string `json:"next"`
		} `json:"links"`
	}
	if err := unmarshal(endpoint, body, &w, "projects", func() bool { return w.Projects != nil }); err != nil {
		return nil, "", err
	}
	out := make([]Project, 0, len(*w.Projects))
	for _, p := range *w.Projects {
		out = append(out, Project{ID: p.ID, Name: p.Name, DomainID: p.DomainID, ParentID: p.ParentID, Enabled: p.Enabled == nil || *p.Enabled})
	}
	return out, w.Links.Next, nil
}

// projectNamed picks the one project named name from GET /v3/projects.
func projectNamed(body io.Reader, name string) (string, error) {
	projects, _, err := decodeProjects(EndpointIAMProjects, body)
	var ids []string
	for _, p := range projects {
		if p.Name == name && p.ID != "" {
			ids = append(ids, p.ID)
		}
	}
	switch {
	case err != nil:
		return "", err
	case len(ids) == 1:
		return ids[0], nil
	case len(ids) == 0:
		return "", decodeError(EndpointIAMProjects, "no project named %q", name)
	}
	return "", decodeError(EndpointIAMProjects, "%d projects named %q", len(ids), name)
}
