package kmsapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
)

// LookupProject returns the ID of the project named after region, from IAM:
// GET {iam}/v3/projects?name=<region>. With an IAM token credential it logs
// in scoped to that project name instead and reads the project from the
// token, which also leaves the token cached for the KMS calls.
func (c *Credential) LookupProject(ctx context.Context, region string) (id string, err error) {
	if region == "" {
		return "", &Error{Endpoint: EndpointIAMProjects, Err: errors.New("empty region")}
	}
	if l, ok := c.opts.Auth.(projectLooker); ok {
		err = c.run(ctx, EndpointIAMToken, func(ctx context.Context) attempt {
			if _, err := c.waitLimit(ctx); err != nil {
				return attempt{err: &Error{Endpoint: EndpointIAMToken, Err: err}}
			}
			id, err = l.lookupProject(ctx, c.http, region)
			e, _ := asError(err)
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
