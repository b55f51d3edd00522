/**
 * Talking to a business cluster (and the meta-cluster) the way a user does, for the e2e tests:
 * the toolchain's kubectl with a kubeconfig, and a bearer-token request that proves a
 * ServiceAccount token is accepted.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { parse } from "yaml";
import { toolchainBinary } from "../../src/dev/toolchain";

export const kubectl = (kubeconfig: string, ...args: string[]) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", kubeconfig, ...args], { encoding: "utf8" });

export const serverVersion = (kubeconfig: string) =>
  (JSON.parse(kubectl(kubeconfig, "version", "-o", "json")) as { serverVersion: { gitVersion: string } }).serverVersion.gitVersion;

interface KubeconfigDoc {
  clusters: { cluster: { server: string; "certificate-authority-data": string } }[];
}

/** A POST authenticated only by a bearer token (no client certificate), to the kubeconfig's server. */
export function postWithToken(kubeconfig: string, path: string, token: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const doc = parse(readFileSync(kubeconfig, "utf8")) as KubeconfigDoc;
  const { server, "certificate-authority-data": ca } = doc.clusters[0].cluster;
  const payload = JSON.stringify(body);
  return new Promise((done, fail) => {
    const req = request(
      `${server}${path}`,
      { method: "POST", ca: Buffer.from(ca, "base64"), headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "content-length": Buffer.byteLength(payload) } },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => done({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
      },
    );
    req.on("error", fail);
    req.end(payload);
  });
}

/** Creates a ServiceAccount and a token for it, and asks the apiserver who that token is. */
export async function serviceAccountTokenUser(kubeconfig: string, name: string): Promise<{ status: number; username?: string }> {
  kubectl(kubeconfig, "-n", "default", "create", "serviceaccount", name);
  const token = kubectl(kubeconfig, "-n", "default", "create", "token", name).trim();
  const review = await postWithToken(kubeconfig, "/apis/authentication.k8s.io/v1/selfsubjectreviews", token, {
    apiVersion: "authentication.k8s.io/v1",
    kind: "SelfSubjectReview",
  });
  return { status: review.status, username: (review.json as { status?: { userInfo?: { username?: string } } }).status?.userInfo?.username };
}
