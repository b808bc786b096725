// Package kubecheck holds no code: its tests render the Helm chart and the
// kustomize overlays in-process (the helm and kustomize libraries) and
// decode every object strictly against the Kubernetes and
// prometheus-operator API types. It is a module of its own so that these
// dependencies stay out of the exporter's go.mod.
package kubecheck
