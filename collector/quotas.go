package collector

import (
	"context"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// Quotas exports the user-quotas endpoint: the quota and use per resource.
const Quotas = "quotas"

type quotasCollector struct {
	about
	limit, used *desc
}

func newQuotas(o Options) collector {
	return &quotasCollector{
		about: about{Quotas, kmsapi.EndpointQuotas, o.CacheTTL},
		limit: newDesc("kms_quota_limit", "KMS quota of the resource (user-quotas quota).", o.CacheTTL, "resource"),
		used:  newDesc("kms_quota_used", "KMS quota of the resource in use (user-quotas used).", o.CacheTTL, "resource"),
	}
}

func (c *quotasCollector) descs() []*desc { return []*desc{c.limit, c.used} }

func (c *quotasCollector) fetch(ctx context.Context, client *kmsapi.Client, _ *Target) (emitFunc, error) {
	quotas, err := client.Quotas(ctx)
	if err != nil {
		return nil, err
	}
	// A resource listed twice would be a duplicate series: the first wins.
	seen := map[string]bool{}
	out := quotas[:0]
	for _, q := range quotas {
		q.Resource = validUTF8(q.Resource)
		if !seen[q.Resource] {
			seen[q.Resource] = true
			out = append(out, q)
		}
	}
	return func(gauge gaugeFunc) {
		for _, q := range out {
			gauge(c.limit, float64(q.Limit), q.Resource)
			gauge(c.used, float64(q.Used), q.Resource)
		}
	}, nil
}
