package kmsapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// LookupProject returns the ID of the project named after region, from IAM:
// GET {iam}/v3/projects?name=<region>. With an IAM password credential it
// logs in scoped to that project name instead and reads the project from
// the token, which also leaves the token cached for the KMS calls.
func (c *Credential) LookupProject(ctx context.Context, region string) (string, error) {
	if region == "" {
		return "", &Error{Endpoint: EndpointIAMProjects, Err: fmt.Errorf("empty region")}
	}
	var id string
	if l, ok := c.opts.Auth.(projectLooker); ok {
		err := c.run(ctx, EndpointIAMToken, func(ctx context.Context) attempt {
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
	err := c.do(ctx, &request{
		endpoint: EndpointIAMProjects,
		method:   http.MethodGet,
		url:      c.iamEndpoint(region) + "/v3/projects?name=" + url.QueryEscape(region),
		decode: func(body io.Reader, _ int64) (err error) {
			id, err = decodeProjects(body, region)
			return err
		},
	})
	return id, err
}

// get calls a KMS read API of the client's project with decode for the answer.
func (c *Client) get(ctx context.Context, endpoint, path string, decode func(io.Reader) error) error {
	return c.opts.Credential.do(ctx, &request{
		endpoint:  endpoint,
		region:    c.opts.Region,
		method:    http.MethodGet,
		url:       c.opts.Endpoint + path,
		projectID: c.opts.ProjectID,
		decode:    func(body io.Reader, _ int64) error { return decode(body) },
	})
}

func (c *Client) projectPath(version, rest string) string {
	return "/" + version + "/" + url.PathEscape(c.opts.ProjectID) + "/kms/" + rest
}

// Quotas calls user-quotas.
func (c *Client) Quotas(ctx context.Context) (q []Quota, err error) {
	err = c.get(ctx, EndpointQuotas, c.projectPath("v1.0", "user-quotas"), func(body io.Reader) error {
		q, err = decodeQuotas(body)
		return err
	})
	return q, err
}

// InstanceCount calls user-instances: the number of non-default CMKs.
func (c *Client) InstanceCount(ctx context.Context) (n int64, err error) {
	err = c.get(ctx, EndpointInstances, c.projectPath("v1.0", "user-instances"), func(body io.Reader) error {
		n, err = decodeInstances(body)
		return err
	})
	return n, err
}

// filterKeys calls resource_instances with action filter for one page: up
// to MaxPageSize keys starting at index offset, decoded into dst's storage
// when the page fits in cap(dst).
func (c *Client) filterKeys(ctx context.Context, offset int, dst []Key) (keyPage, error) {
	var page keyPage
	err := c.opts.Credential.do(ctx, &request{
		endpoint:  EndpointResourceInstances,
		region:    c.opts.Region,
		method:    http.MethodPost,
		url:       c.opts.Endpoint + c.projectPath("v1.0", "resource_instances/action"),
		body:      []byte(`{"action":"filter","limit":"` + strconv.Itoa(MaxPageSize) + `","offset":"` + strconv.Itoa(offset) + `"}`),
		projectID: c.opts.ProjectID,
		// Each attempt decodes into dst afresh; only a complete page is kept.
		decode: func(body io.Reader, size int64) (err error) {
			page, err = decodeKeyPage(body, size, dst)
			return err
		},
	})
	if err != nil {
		return keyPage{}, err
	}
	if len(page.Keys) > MaxPageSize {
		return keyPage{}, decodeError(EndpointResourceInstances, http.StatusOK, "page at offset %d holds %d keys, more than the limit %d", offset, len(page.Keys), MaxPageSize)
	}
	return page, nil
}

// regionsPageSize is the page size asked of the regions list, and
// maxRegionPages bounds its paging.
var (
	regionsPageSize = 100
	maxRegionPages  = 50
)

// Regions lists the regions cross-region keys support. The list has no
// total, and a server may cap the page size below what is asked, so a short
// page does not end it: paging stops at the first empty page.
func (c *Client) Regions(ctx context.Context) ([]string, error) {
	all := []string{}
	for range maxRegionPages {
		path := c.projectPath("v2", "regions") + "?limit=" + strconv.Itoa(regionsPageSize) + "&offset=" + strconv.Itoa(len(all))
		var regions []string
		err := c.get(ctx, EndpointRegions, path, func(body io.Reader) (err error) {
			regions, err = decodeRegions(body)
			return err
		})
		if err != nil {
			return nil, err
		}
		if len(regions) == 0 {
			return all, nil
		}
		all = append(all, regions...)
	}
	return nil, decodeError(EndpointRegions, http.StatusOK, "more than %d pages of regions", maxRegionPages)
}
