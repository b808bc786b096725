package main

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/kms-exporter/kms_exporter/config"
	"github.com/kms-exporter/kms_exporter/discovery"
)

// sdGroup is one target group of the Prometheus HTTP service discovery
// format: GET /targets answers a JSON list of them.
type sdGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// The labels of every /targets group. Prometheus drops __meta_* labels
// after relabeling: a scrape config copies the ones it wants.
const (
	metaRegion      = "__meta_kms_region"
	metaProjectID   = "__meta_kms_project_id"   // "" for a static target whose project is looked up
	metaProjectName = "__meta_kms_project_name" // the IAM project name, when known
	metaCredentials = "__meta_kms_credentials"
	metaDiscovered  = "__meta_kms_discovered" // "true" or "false"
)

// targetInfos lists the targets of cfg, then those discovery found.
func targetInfos(cfg *config.Config, found []discovery.Target) []targetInfo {
	targets := make([]targetInfo, 0, len(cfg.Targets)+len(found))
	for _, t := range cfg.Targets {
		name := ""
		if t.ProjectID == "" {
			name = t.Region // the project the lookup finds
		}
		targets = append(targets, targetInfo{Name: t.Name, Region: t.Region, ProjectID: t.ProjectID, ProjectName: name, Credential: t.Credentials})
	}
	for _, t := range found {
		targets = append(targets, targetInfo{Name: t.Name, Region: t.Region, ProjectID: t.ProjectID, ProjectName: t.ProjectName, Credential: t.Credential, Discovered: true})
	}
	return targets
}

// sdGroups lists every target, one group each: the group's target is the
// name /probe?target= takes.
func sdGroups(targets []targetInfo) []sdGroup {
	groups := make([]sdGroup, 0, len(targets))
	for _, t := range targets {
		groups = append(groups, sdGroup{[]string{t.Name}, map[string]string{
			metaRegion: t.Region, metaProjectID: t.ProjectID, metaProjectName: t.ProjectName,
			metaCredentials: t.Credential, metaDiscovered: strconv.FormatBool(t.Discovered),
		}})
	}
	return groups
}

// serveTargets answers the targets in the HTTP service discovery format.
func (a *app) serveTargets(w http.ResponseWriter, r *http.Request) {
	l := a.inForce(w)
	if l == nil {
		return
	}
	body, err := json.Marshal(l.sd)
	if err != nil {
		http.Error(w, "cannot encode the targets", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(body, '\n'))
}
