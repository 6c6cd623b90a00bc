#!/usr/bin/env bash
# The whole Kubernetes path on a laptop: a kind cluster with gVisor, the images built and
# loaded, the operator installed with Helm, deploy/kind/selfplayrun-kind.yaml applied, and a wait
# until the run reports step >= 1 (or TIMEOUT seconds, default 3600, pass: then the pods' state
# and logs are printed and the script fails). Needs docker, kind, kubectl, helm, and the
# network for gVisor's release and the images' packages.
#
#   deploy/kind/up.sh            CLUSTER (default azr), RUN (default the kind example), TIMEOUT
set -euo pipefail
cd "$(dirname "$0")/../.."
CLUSTER=${CLUSTER:-azr}
RUN=${RUN:-deploy/kind/selfplayrun-kind.yaml}
TIMEOUT=${TIMEOUT:-3600}

kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --config deploy/kind/cluster.yaml
# gVisor inside the kind node (a container): runsc and its containerd shim from gVisor's
# releases. kind's containerd drives cgroups through systemd, so runsc must too (runsc.toml,
# which cluster.yaml's runtime options point at); without it the sandbox fails to start.
for node in $(kind get nodes --name "$CLUSTER"); do
  docker exec "$node" bash -c '
    set -e
    if ! command -v runsc >/dev/null; then
      arch=$(uname -m); url=https://storage.googleapis.com/gvisor/releases/release/latest/${arch}
      curl -fsSLo /usr/local/bin/runsc ${url}/runsc
      curl -fsSLo /usr/local/bin/containerd-shim-runsc-v1 ${url}/containerd-shim-runsc-v1
      chmod +x /usr/local/bin/runsc /usr/local/bin/containerd-shim-runsc-v1
    fi
    printf "[runsc_config]\n  systemd-cgroup = \"true\"\n" > /etc/containerd/runsc.toml
    systemctl restart containerd'
done

# The CPU image serves the proposer, the solver and the learner (no GPU on kind).
for image in executor cpu operator; do
  bash docker/build.sh "$image" "azr-$image:dev"
  kind load docker-image --name "$CLUSTER" "azr-$image:dev"
done

helm upgrade --install azr charts/azr-operator --namespace azr-system --create-namespace \
  --set image.repository=azr-operator --set image.tag=dev --set image.pullPolicy=Never \
  --set serviceImages.executor=azr-executor:dev --set serviceImages.cpu=azr-cpu:dev
kubectl -n azr-system rollout status deployment/azr-azr-operator --timeout=300s

kubectl apply -f "$RUN"
name=$(kubectl create --dry-run=client -o jsonpath='{.metadata.name}' -f "$RUN")
echo "waiting up to $TIMEOUT s for $name to report step >= 1 ..."
deadline=$(( $(date +%s) + TIMEOUT ))
while :; do
  step=$(kubectl get selfplayrun "$name" -o jsonpath='{.status.progress.step}' 2>/dev/null || true)
  [ "${step:-0}" -ge 1 ] 2>/dev/null && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "no step after $TIMEOUT s; the run and its pods:" >&2
    kubectl get selfplayrun "$name" -o yaml >&2 || true
    kubectl get pods -l "azr.dev/run=$name" -o wide >&2 || true
    for pod in $(kubectl get pods -l "azr.dev/run=$name" -o name 2>/dev/null); do
      echo "--- $pod" >&2; kubectl logs "$pod" --tail=30 >&2 || true
    done
    exit 1
  fi
  kubectl get selfplayrun "$name" --no-headers 2>/dev/null || true
  sleep 15
done
kubectl get selfplayrun "$name"
