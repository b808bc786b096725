package kmsapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"golang.org/x/sync/errgroup"
)

// LookupProject returns the ID of the project named after region, from IAM:
// GET {iam}/v3/projects?name=<region>. With an IAM password credential it
// logs in scoped to that project name instead and reads the project from
// the token, which also leaves the token cached for the KMS calls.
func (c *Credential) LookupProject(ctx context.Context, region string) (string, error) {
	if region == "" {
		return "", &Error{Endpoint: EndpointIAMProjects, Err: fmt.Errorf("empty region")}
	}
	if l, ok := c.opts.Auth.(projectLooker); ok {
		var id string
		_, err := c.run(ctx, EndpointIAMToken, func(ctx context.Context) attempt {
			if _, err := c.waitLimit(ctx); err != nil {
				return attempt{err: &Error{Endpoint: EndpointIAMToken, Err: err}}
			}
			var err error
			id, err = l.lookupProject(ctx, region)
			a := attempt{err: err}
			if e, ok := asError(err); ok {
				a.retry = retryableStatus(e.StatusCode)
			}
			return a
		})
		return id, err
	}
	body, err := c.do(ctx, &request{
		endpoint: EndpointIAMProjects,
		method:   http.MethodGet,
		url:      c.iamEndpoint(region) + "/v3/projects?name=" + url.QueryEscape(region),
	})
	if err != nil {
		return "", err
	}
	return decodeProjects(body, region)
}

// get returns the body of a successful answer and its request ID.
func (c *Client) get(ctx context.Context, endpoint, path string) ([]byte, string, error) {
	r := &request{
		endpoint:  endpoint,
		region:    c.opts.Region,
		method:    http.MethodGet,
		url:       c.opts.Endpoint + path,
		projectID: c.opts.ProjectID,
	}
	body, err := c.opts.Credential.do(ctx, r)
	return body, r.answerID, err
}

// withRequestID adds the request ID of a 200 to the error decoding it: a
// malformed answer is worth reporting to the provider, who needs the ID.
func withRequestID(err error, id string) error {
	if e, ok := asError(err); ok && e.RequestID == "" {
		e.RequestID = id
	}
	return err
}

func (c *Client) projectPath(version, rest string) string {
	return "/" + version + "/" + url.PathEscape(c.opts.ProjectID) + "/kms/" + rest
}

// Quotas calls user-quotas.
func (c *Client) Quotas(ctx context.Context) ([]Quota, error) {
	body, id, err := c.get(ctx, EndpointQuotas, c.projectPath("v1.0", "user-quotas"))
	if err != nil {
		return nil, err
	}
	q, err := decodeQuotas(body)
	return q, withRequestID(err, id)
}

// InstanceCount calls user-instances: the number of non-default CMKs.
func (c *Client) InstanceCount(ctx context.Context) (int64, error) {
	body, id, err := c.get(ctx, EndpointInstances, c.projectPath("v1.0", "user-instances"))
	if err != nil {
		return 0, err
	}
	n, err := decodeInstances(body)
	return n, withRequestID(err, id)
}

type wireTagFilter struct {
	Key    string   `json:"key"`
	Values []string `json:"values"`
}

type wireMatch struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type wireQuery struct {
	Action  string          `json:"action"`
	Limit   string          `json:"limit,omitempty"`
	Offset  string          `json:"offset,omitempty"`
	Tags    []wireTagFilter `json:"tags,omitempty"`
	Matches []wireMatch     `json:"matches,omitempty"`
}

func queryBody(q KeyQuery, action string, limit, offset int) []byte {
	w := wireQuery{Action: action}
	if action == "filter" {
		w.Limit, w.Offset = strconv.Itoa(limit), strconv.Itoa(offset)
	}
	for _, t := range q.Tags {
		vals := t.Values
		if vals == nil {
			vals = []string{}
		}
		w.Tags = append(w.Tags, wireTagFilter{Key: t.Key, Values: vals})
	}
	for _, m := range q.Matches {
		w.Matches = append(w.Matches, wireMatch(m))
	}
	b, _ := json.Marshal(w) // cannot fail: strings and slices only
	return b
}

// resourceInstances decodes the page as it arrives (decodeKeyPageFrom): a
// 1000-key page is 300-650 KB of JSON that is never held whole, which keeps
// the exporter's memory small while many targets page at once.
func (c *Client) resourceInstances(ctx context.Context, body []byte, wantResources bool, dst []Key) (KeyPage, error) {
	var page KeyPage
	r := &request{
		endpoint:  EndpointResourceInstances,
		region:    c.opts.Region,
		method:    http.MethodPost,
		url:       c.opts.Endpoint + c.projectPath("v1.0", "resource_instances/action"),
		body:      body,
		projectID: c.opts.ProjectID,
		// Each attempt decodes into dst afresh; only a complete page is kept.
		decode: func(body io.Reader, size int64) error {
			var err error
			page, err = decodeKeyPageFrom(body, size, wantResources, dst)
			return err
		},
	}
	if _, err := c.opts.Credential.do(ctx, r); err != nil {
		return KeyPage{}, err
	}
	return page, nil
}

// FilterKeys calls resource_instances with action filter for one page:
// up to limit (1..MaxPageSize) keys starting at index offset.
func (c *Client) FilterKeys(ctx context.Context, q KeyQuery, limit, offset int) (KeyPage, error) {
	if limit < 1 || limit > MaxPageSize || offset < 0 {
		return KeyPage{}, &Error{Endpoint: EndpointResourceInstances, Err: fmt.Errorf("invalid limit %d or offset %d", limit, offset)}
	}
	return c.filterKeysInto(ctx, q, limit, offset, nil)
}

// filterKeysInto is FilterKeys decoding into dst's storage when the page
// fits in cap(dst).
func (c *Client) filterKeysInto(ctx context.Context, q KeyQuery, limit, offset int, dst []Key) (KeyPage, error) {
	p, err := c.resourceInstances(ctx, queryBody(q, "filter", limit, offset), true, dst)
	if err != nil {
		return KeyPage{}, err
	}
	if len(p.Keys) > limit {
		return KeyPage{}, decodeError(EndpointResourceInstances, http.StatusOK, "page at offset %d holds %d keys, more than the limit %d", offset, len(p.Keys), limit)
	}
	return p, nil
}

// CountKeys calls resource_instances with action count.
func (c *Client) CountKeys(ctx context.Context, q KeyQuery) (int, error) {
	p, err := c.resourceInstances(ctx, queryBody(q, "count", 0, 0), false, nil)
	if err != nil {
		return 0, err
	}
	return p.Total, nil
}

// maxListedKeys bounds ListKeys against an absurd total_count.
var maxListedKeys = 1_000_000

// ListKeys returns every key matching q in the API's order: the first page
// tells the total, the rest are fetched concurrently (as many at once as the
// credential allows in flight). Every page must hold exactly the keys the
// total promises and agree on the total; if keys are created or deleted
// while listing, ListKeys fails rather than return duplicates or gaps.
func (c *Client) ListKeys(ctx context.Context, q KeyQuery) ([]Key, error) {
	first, err := c.FilterKeys(ctx, q, MaxPageSize, 0)
	if err != nil {
		return nil, err
	}
	total := first.Total
	if total > maxListedKeys {
		return nil, decodeError(EndpointResourceInstances, http.StatusOK, "total_count %d exceeds the %d keys ListKeys handles", total, maxListedKeys)
	}
	if err := checkPage(first, 0, total); err != nil {
		return nil, err
	}
	if total <= MaxPageSize {
		return first.Keys, nil
	}
	// Every further page decodes straight into its place in keys.
	keys := make([]Key, total)
	copy(keys, first.Keys)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Credential.opts.Concurrency)
	for offset := MaxPageSize; offset < total; offset += MaxPageSize {
		end := min(offset+MaxPageSize, total)
		g.Go(func() error {
			p, err := c.filterKeysInto(gctx, q, MaxPageSize, offset, keys[offset:end:end])
			if err != nil {
				return err
			}
			return checkPage(p, offset, total)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Pages that each look right can still overlap if keys moved between
	// requests.
	seen := make(map[string]struct{}, total)
	for i := range keys {
		if _, dup := seen[keys[i].ID]; dup {
			return nil, decodeError(EndpointResourceInstances, http.StatusOK, "key %s listed twice; keys changed while listing", keys[i].ID)
		}
		seen[keys[i].ID] = struct{}{}
	}
	return keys, nil
}

// checkPage verifies that the page at offset holds what a listing of total
// keys needs there.
func checkPage(p KeyPage, offset, total int) error {
	if p.Total != total {
		return decodeError(EndpointResourceInstances, http.StatusOK, "total_count changed from %d to %d while listing; keys changed", total, p.Total)
	}
	want := min(MaxPageSize, total-offset)
	if len(p.Keys) != want {
		return decodeError(EndpointResourceInstances, http.StatusOK, "page at offset %d holds %d keys, want %d of %d", offset, len(p.Keys), want, total)
	}
	return nil
}

// regionsPageSize and maxRegionPages bound the regions paging.
var (
	regionsPageSize = 100
	maxRegionPages  = 50
)

// Regions lists the regions cross-region keys support, paging until a short page.
func (c *Client) Regions(ctx context.Context) ([]string, error) {
	var all []string
	for page := 0; page < maxRegionPages; page++ {
		path := c.projectPath("v2", "regions") + "?limit=" + strconv.Itoa(regionsPageSize) + "&offset=" + strconv.Itoa(len(all))
		body, id, err := c.get(ctx, EndpointRegions, path)
		if err != nil {
			return nil, err
		}
		regions, err := decodeRegions(body)
		if err != nil {
			return nil, withRequestID(err, id)
		}
		all = append(all, regions...)
		if len(regions) < regionsPageSize {
			if all == nil {
				all = []string{}
			}
			return all, nil
		}
	}
	return nil, decodeError(EndpointRegions, http.StatusOK, "more than %d pages of regions", maxRegionPages)
}
