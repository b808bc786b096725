package kmsapi

import (
	"context"
	"slices"

	"golang.org/x/sync/errgroup"

	"github.com/kms-exporter/kms_exporter/internal/apitrace"
)

// maxListedKeys bounds ListKeys against an absurd total_count.
var maxListedKeys = 1_000_000

// ListKeys returns every key once, in the API's order: the first page tells
// the total, the rest are fetched concurrently (as many at once as the
// credential allows in flight).
//
// Paging is by offset over a list that others may change meanwhile: a key
// created or deleted between two page requests shifts the later pages, so
// a key may come twice (it is kept once) or not at all. The listing is
// then off by no more than the keys that changed while it ran, which is
// all offset paging allows; when the total grew, the keys past the first
// total are read too. One answer is one moment of the list, so it must
// hold together on its own: as many keys as its own total_count leaves for
// its offset (up to the limit) and none twice. One that does not is
// broken, not busy, and fails the listing.
func (c *Client) ListKeys(ctx context.Context) ([]Key, error) {
	first, err := c.keyPage(ctx, 0, nil)
	if err != nil {
		return nil, err
	}
	if first.Total <= MaxPageSize {
		return joinPages(ctx, []listedPage{first}, first.Keys)
	}
	// Every further page decodes straight into its place in buf while the
	// list keeps the length the first page told.
	buf := make([]Key, first.Total)
	copy(buf, first.Keys)
	pages := make([]listedPage, (first.Total+MaxPageSize-1)/MaxPageSize)
	pages[0] = first
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Credential.opts.Concurrency)
	for i := 1; i < len(pages); i++ {
		offset := i * MaxPageSize
		end := min(offset+MaxPageSize, first.Total)
		g.Go(func() (err error) {
			pages[i], err = c.keyPage(gctx, offset, buf[offset:end:end])
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if pages, err = c.readOn(ctx, pages); err != nil {
		return nil, err
	}
	return joinPages(ctx, pages, buf)
}

// listedPage is a page and the offset it was asked for.
type listedPage struct {
	keyPage
	offset int
}

// readOn reads on from where the last page ended while an answer told of
// more keys: the list grew while it was read. The first page is older than
// the others; which of them is the newest is not known.
func (c *Client) readOn(ctx context.Context, pages []listedPage) ([]listedPage, error) {
	total := 0
	for _, p := range pages[1:] {
		total = max(total, p.Total)
	}
	last := pages[len(pages)-1]
	for offset := last.offset + len(last.Keys); offset < total; {
		p, err := c.keyPage(ctx, offset, nil)
		if err != nil {
			return nil, err
		}
		pages = append(pages, p)
		total = p.Total
		if len(p.Keys) == 0 {
			break
		}
		offset += len(p.Keys)
	}
	return pages, nil
}

// joinPages returns the keys of pages in order, each once. They are buf
// when every page filled its place there.
func joinPages(ctx context.Context, pages []listedPage, buf []Key) ([]Key, error) {
	keys := buf
	for _, p := range pages {
		if p.offset >= len(buf) || len(p.Keys) != min(MaxPageSize, len(buf)-p.offset) {
			all := make([][]Key, len(pages))
			for j := range pages {
				all[j] = pages[j].Keys
			}
			keys = slices.Concat(all...)
			break
		}
	}
	seen := make(map[string]int, len(keys)) // key ID -> the page it came in
	out := keys[:0]
	i := 0
	for n, p := range pages {
		for range p.Keys {
			k := keys[i]
			i++
			if at, dup := seen[k.ID]; dup {
				if at == n {
					return nil, decodeError(EndpointResourceInstances, "page at offset %d lists key %s twice", p.offset, k.ID)
				}
				continue
			}
			seen[k.ID] = n
			out = append(out, k)
		}
	}
	if dups, first, last := len(keys)-len(out), pages[0].Total, pages[len(pages)-1].Total; dups > 0 || first != last {
		apitrace.Note(ctx, "keys changed while listing: total_count %d, then %d; %d keys seen twice, counted once", first, last, dups)
	}
	return out, nil
}

// keyPage reads the page at offset (into dst, as filterKeys does) and
// checks that it holds together on its own.
func (c *Client) keyPage(ctx context.Context, offset int, dst []Key) (listedPage, error) {
	p, err := c.filterKeys(ctx, offset, dst)
	if err != nil {
		return listedPage{}, err
	}
	if p.Total > maxListedKeys {
		return listedPage{}, decodeError(EndpointResourceInstances, "total_count %d exceeds the %d keys ListKeys handles", p.Total, maxListedKeys)
	}
	if want := min(MaxPageSize, max(0, p.Total-offset)); len(p.Keys) != want {
		return listedPage{}, decodeError(EndpointResourceInstances, "page at offset %d holds %d keys where its total_count %d leaves room for %d", offset, len(p.Keys), p.Total, want)
	}
	return listedPage{p, offset}, nil
}
