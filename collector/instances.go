package collector

import (
	"context"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// Instances exports the user-instances endpoint: the number of CMKs.
const Instances = "instances"

type instancesCollector struct {
	about
	instances *desc
}

func newInstances(o Options) collector {
	return &instancesCollector{
		about:     about{Instances, kmsapi.EndpointInstances, o.CacheTTL},
		instances: newDesc("kms_cmk_instances", "Number of customer master keys, default keys excluded (user-instances instance_num).", o.CacheTTL),
	}
}

func (c *instancesCollector) descs() []*desc { return []*desc{c.instances} }

func (c *instancesCollector) fetch(ctx context.Context, client *kmsapi.Client, _ *Target) (emitFunc, error) {
	n, err := client.InstanceCount(ctx)
	if err != nil {
		return nil, err
	}
	return func(gauge gaugeFunc) { gauge(c.instances, float64(n)) }, nil
}
