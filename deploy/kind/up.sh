#!/usr/bin/env bash
# The whole Kubernetes path on a laptop: a kind cluster with gVisor, the images built and
# loaded, the operator installed with Helm, the CPU example applied, and a wait until the run
# reports step >= 1. Needs docker, kind, kubectl and helm. Not run by CI (no Docker engine there).
set -euo pipefail
cd "$(dirname "$0")/../.."
CLUSTER=${CLUSTER:-azr}

kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --config deploy/kind/cluster.yaml
# gVisor inside the kind node (a container): runsc and its containerd shim from gVisor's releases.
for node in $(kind get nodes --name "$CLUSTER"); do
  docker exec "$node" bash -c '
    set -e
    if ! command -v runsc >/dev/null; then
      arch=$(uname -m); url=https://storage.googleapis.com/gvisor/releases/release/latest/${arch}
      curl -fsSLo /usr/local/bin/runsc ${url}/runsc
      curl -fsSLo /usr/local/bin/containerd-shim-runsc-v1 ${url}/containerd-shim-runsc-v1
      chmod +x /usr/local/bin/runsc /usr/local/bin/containerd-shim-runsc-v1
      systemctl restart containerd
    fi'
done

for image in executor inference learner operator; do
  docker build -f "docker/${image}.Dockerfile" -t "azr-${image}:dev" .
  kind load docker-image --name "$CLUSTER" "azr-${image}:dev"
done

helm upgrade --install azr charts/azr-operator --namespace azr-system --create-namespace \
  --set image.repository=azr-operator --set image.tag=dev --set image.pullPolicy=Never \
  --set serviceImages.executor=azr-executor:dev --set serviceImages.inference=azr-inference:dev \
  --set serviceImages.learner=azr-learner:dev
kubectl -n azr-system rollout status deployment/azr-azr-operator --timeout=300s

kubectl apply -f examples/selfplayrun-cpu.yaml
echo "waiting for the run to report step >= 1 ..."
until [ "$(kubectl get selfplayrun cpu-tiny -o jsonpath='{.status.progress.step}' 2>/dev/null || echo 0)" -ge 1 ]; do
  kubectl get selfplayrun cpu-tiny --no-headers 2>/dev/null || true
  sleep 15
done
kubectl get selfplayrun cpu-tiny
