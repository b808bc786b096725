package collector

import (
	"context"
	"slices"
	"time"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// Regions exports the regions endpoint: where cross-region keys may go.
const Regions = "regions"

// DefaultRegionsTTL is how long the cross-region list is reused: it changes
// when Huawei Cloud opens a region, not between scrapes.
const DefaultRegionsTTL = time.Hour

type regionsCollector struct {
	about
	region *desc
}

func newRegions(o Options) collector {
	ttl := o.RegionsTTL
	if ttl == 0 {
		ttl = DefaultRegionsTTL
	}
	ttl = max(o.CacheTTL, ttl)
	return &regionsCollector{
		about:  about{Regions, kmsapi.EndpointRegions, ttl},
		region: newDesc("kms_cross_region_info", "1 for every region that cross-region keys support.", ttl, "supported_region"),
	}
}

func (c *regionsCollector) descs() []*desc { return []*desc{c.region} }

func (c *regionsCollector) fetch(ctx context.Context, client *kmsapi.Client, _ *Target) (emitFunc, error) {
	regions, err := client.Regions(ctx)
	if err != nil {
		return nil, err
	}
	regions = sortedUnique(regions)
	return func(gauge gaugeFunc) {
		for _, r := range regions {
			gauge(c.region, 1, r)
		}
	}, nil
}

// sortedUnique sorts names, drops duplicates and makes them valid label values.
func sortedUnique(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = validUTF8(n)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
