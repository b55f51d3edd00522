import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { shellWord } from "../../../src/cli/dev";
import { defaultConfig, loadConfig, saveConfig, statePaths } from "../../../src/dev/config";
import { ensureObjectStoreCredentials, objectStoreEnv, objectStoreService } from "../../../src/dev/object-store";
import { registryAddress, registryConfigYaml, registryService } from "../../../src/dev/registry";
import { MissingBinaryError } from "../../../src/dev/toolchain";

const dirs: string[] = [];
const tempState = () => {
  const dir = mkdtempSync(join(tmpdir(), "kok-devsvc-unit-"));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("dev services' ports and config", () => {
  it("derives the registry and object store ports from the base", () => {
    const config = defaultConfig("/tmp/kok-state", 20000);
    expect(config.ports.registry).toBe(25000);
    expect(config.ports.objectStore).toBe(29000);
    expect(registryAddress(config)).toBe("127.0.0.1:25000");
    expect(registryService(config).port).toBe(25000);
    expect(objectStoreService(config).args).toEqual(["--port", "127.0.0.1:29000", "--region", "us-east-1", "posix", "/tmp/kok-state/object-store"]);
  });

  it("fills the new ports into a config saved before they existed, from its base", () => {
    const stateDir = tempState();
    const config = defaultConfig(stateDir, 12000);
    const oldPorts: Record<string, number> = { ...config.ports };
    delete oldPorts.registry;
    delete oldPorts.objectStore;
    writeFileSync(statePaths(stateDir).config, JSON.stringify({ ...config, ports: oldPorts }));
    expect(loadConfig(stateDir)?.ports).toEqual(config.ports);
    saveConfig(config);
    expect(loadConfig(stateDir)?.ports.registry).toBe(17000);
  });

  it("writes a registry config on loopback with filesystem storage in the state dir and deletes enabled", () => {
    const config = defaultConfig("/tmp/kok-state", 20000);
    const yaml = parse(registryConfigYaml(config)) as Record<string, Record<string, unknown>>;
    expect(yaml.http.addr).toBe("127.0.0.1:25000");
    expect(yaml.storage).toMatchObject({ filesystem: { rootdirectory: "/tmp/kok-state/registry" }, delete: { enabled: true } });
    expect(yaml.auth).toBeUndefined();
  });
});

describe("object store credentials", () => {
  it("are made once per state dir, 0600, and reach the process only through its environment", () => {
    const config = defaultConfig(tempState(), 20000);
    const first = ensureObjectStoreCredentials(config);
    expect(first.accessKeyId).toMatch(/^KOK[A-Z0-9]{17}$/);
    expect(first.secretAccessKey).toMatch(/^[A-Za-z0-9_-]{40}$/);
    expect(ensureObjectStoreCredentials(config)).toEqual(first);
    expect(statSync(statePaths(config.stateDir).objectStoreCredentials).mode & 0o777).toBe(0o600);
    const service = objectStoreService(config);
    expect(service.args.join(" ")).not.toContain(first.secretAccessKey);
    expect(service.env()).toEqual({ ROOT_ACCESS_KEY_ID: first.accessKeyId, ROOT_SECRET_ACCESS_KEY: first.secretAccessKey });
    expect(service.dropEnv?.("ROOT_SECRET_KEY")).toBe(true);
    expect(service.dropEnv?.("VGW_PORT")).toBe(true);
    expect(service.dropEnv?.("PATH")).toBe(false);
    expect(ensureObjectStoreCredentials(defaultConfig(tempState(), 20000)).secretAccessKey).not.toBe(first.secretAccessKey);
  });

  it("give the S3 and Pulumi backend variables", () => {
    const config = defaultConfig(tempState(), 20000);
    const { accessKeyId, secretAccessKey } = ensureObjectStoreCredentials(config);
    expect(objectStoreEnv(config)).toEqual({
      KOK_S3_ENDPOINT: "http://127.0.0.1:29000",
      KOK_S3_POD_ENDPOINT: "http://10.88.255.254:29000",
      KOK_S3_BUCKET: "kok-dev",
      KOK_S3_BACKEND_URL: "s3://kok-dev?endpoint=http://127.0.0.1:29000&region=us-east-1&use_path_style=true",
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
      AWS_REGION: "us-east-1",
    });
  });

  it("are not invented by env: a state dir without them names the command to run", () => {
    const config = defaultConfig(tempState(), 20000);
    expect(() => objectStoreEnv(config)).toThrow(/no object store credentials in .*object-store-credentials\.json: run `kok dev up --state-dir /);
  });

  it("refuses a credentials file of the wrong shape, saying what to do", () => {
    const config = defaultConfig(tempState(), 20000);
    writeFileSync(statePaths(config.stateDir).objectStoreCredentials, JSON.stringify({ accessKeyId: "x" }));
    expect(() => objectStoreEnv(config)).toThrow(/want \{"accessKeyId": \.\.\., "secretAccessKey": \.\.\.\}; remove it/);
    expect(readFileSync(statePaths(config.stateDir).objectStoreCredentials, "utf8")).toContain("accessKeyId");
  });
});

describe("kok dev env quoting", () => {
  it("leaves plain values alone and quotes the backend URL and quotes inside values", () => {
    expect(shellWord("127.0.0.1:15000")).toBe("127.0.0.1:15000");
    expect(shellWord("s3://b?endpoint=http://h:1&x=y")).toBe("'s3://b?endpoint=http://h:1&x=y'");
    expect(shellWord("it's")).toBe(`'it'\\''s'`);
  });
});

describe("a missing service binary", () => {
  it("names the toolchain target that builds just it, where there is one", () => {
    expect(new MissingBinaryError("versitygw", "/t/bin/versitygw").message).toBe(
      "versitygw not found at /t/bin/versitygw: build it with `npm run toolchain`, or only this part: `bash tools/toolchain.sh versitygw` (or set KOK_TOOLCHAIN_DIR to a toolchain that has it)",
    );
    expect(new MissingBinaryError("ctr", "/t/bin/ctr").message).toContain("`bash tools/toolchain.sh containerd`");
    expect(new MissingBinaryError("kube-apiserver", "/t/bin/kube-apiserver").message).not.toContain("only this part");
  });
});
