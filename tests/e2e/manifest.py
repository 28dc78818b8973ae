"""Read and adapt the example manifests for `podman kube play` (used by run.sh).

  manifest.py name FILE                  the (first) Pod's name, after `pod` below
  manifest.py volumes FILE               every emptyDir volume name
  manifest.py probe FILE CTR KIND        the exec command of CTR's KIND probe, one arg a line
  manifest.py pod FILE OUT [K=V...]      write a Pod that podman can play: a Job's pod template
                                         becomes a Pod (named after the Job); `sidecars=containers`
                                         turns native sidecars (initContainers with
                                         restartPolicy: Always) into regular containers;
                                         `env.CTR.VAR=VALUE` sets an env var; `only=NAME` keeps
                                         the document named NAME; `restart=POLICY` sets
                                         the pod's restartPolicy
"""
import sys
import yaml


def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def as_pod(doc):
    """A Pod for doc (a Pod, or a Job/Deployment's template)."""
    if doc.get("kind") == "Pod":
        return doc
    tmpl = doc["spec"]["template"]
    meta = dict(tmpl.get("metadata") or {})
    meta["name"] = doc["metadata"]["name"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": tmpl["spec"]}


def pods(path):
    return [as_pod(d) for d in docs(path) if d.get("kind") in ("Pod", "Job", "Deployment")]


def containers(spec):
    return spec.get("initContainers", []) + spec.get("containers", [])


def main(argv):
    cmd, path = argv[1], argv[2]
    if cmd == "name":
        print(pods(path)[0]["metadata"]["name"])
    elif cmd == "volumes":
        for p in pods(path):
            for v in p["spec"].get("volumes", []):
                if "emptyDir" in v:
                    print(v["name"])
    elif cmd == "probe":
        ctr, kind = argv[3], argv[4]
        for p in pods(path):
            for c in containers(p["spec"]):
                if c["name"] == ctr and kind in c:
                    print("\n".join(c[kind]["exec"]["command"]))
    elif cmd == "pod":
        out, opts = argv[3], argv[4:]
        result = []
        for p in pods(path):
            keep = True
            for o in opts:
                k, v = o.split("=", 1)
                if k == "only":
                    keep = p["metadata"]["name"] == v
                elif k == "restart":
                    p["spec"]["restartPolicy"] = v
                elif k == "sidecars" and v == "containers":
                    spec = p["spec"]
                    sidecars = [c for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"]
                    spec["initContainers"] = [c for c in spec.get("initContainers", []) if c not in sidecars]
                    if not spec["initContainers"]:
                        del spec["initContainers"]
                    for c in sidecars:
                        del c["restartPolicy"]
                    spec["containers"] = sidecars + spec["containers"]
                elif k.startswith("env."):
                    _, ctr, var = k.split(".", 2)
                    for c in containers(p["spec"]):
                        if c["name"] == ctr:
                            env = [e for e in c.get("env", []) if e["name"] != var]
                            c["env"] = env + [{"name": var, "value": v}]
                elif k.startswith("command."):
                    ctr = k.split(".", 1)[1]
                    for c in containers(p["spec"]):
                        if c["name"] == ctr:
                            c["command"] = yaml.safe_load(v)
                            c.pop("args", None)
                else:
                    sys.exit("unknown option " + o)
            if keep:
                result.append(p)
        with open(out, "w") as f:
            yaml.safe_dump_all(result, f, sort_keys=False)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
