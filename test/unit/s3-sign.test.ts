import { describe, expect, it } from "vitest";
import { amzDate, EMPTY_SHA256, sha256Hex, signV4, uriEncode } from "../../src/runtime/s3/sign";

describe("SigV4 signer", () => {
  // AWS's Signature Version 4 test suite, case "get-vanilla": a generic service, no payload header.
  it("reproduces the test suite's get-vanilla authorization header", () => {
    const signed = signV4(
      { method: "GET", url: "https://example.amazonaws.com/", headers: {}, payloadHash: EMPTY_SHA256 },
      { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
      { region: "us-east-1", service: "service", now: new Date("2015-08-30T12:36:00Z") },
    );
    expect(signed.headers["x-amz-date"]).toBe("20150830T123600Z");
    expect(signed.headers.host).toBe("example.amazonaws.com");
    expect(signed.headers.authorization).toBe(
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, " +
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    );
  });

  // Amazon S3 API reference, "Signature calculations for the Authorization header", example GET Object:
  // the first ten bytes of test.txt, with its published intermediate string to sign and signature.
  it("reproduces S3's documented GET Object example step by step", () => {
    const signed = signV4(
      {
        method: "GET",
        url: "https://examplebucket.s3.amazonaws.com/test.txt",
        headers: { Range: "bytes=0-9", "x-amz-content-sha256": EMPTY_SHA256 },
        payloadHash: EMPTY_SHA256,
      },
      { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" },
      { region: "us-east-1", service: "s3", now: new Date("2013-05-24T00:00:00Z") },
    );
    expect(signed.canonicalRequest).toBe(
      [
        "GET",
        "/test.txt",
        "",
        "host:examplebucket.s3.amazonaws.com",
        "range:bytes=0-9",
        `x-amz-content-sha256:${EMPTY_SHA256}`,
        "x-amz-date:20130524T000000Z",
        "",
        "host;range;x-amz-content-sha256;x-amz-date",
        EMPTY_SHA256,
      ].join("\n"),
    );
    expect(signed.stringToSign.split("\n")).toEqual([
      "AWS4-HMAC-SHA256",
      "20130524T000000Z",
      "20130524/us-east-1/s3/aws4_request",
      "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
    ]);
    expect(signed.signature).toBe("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  });

  it("changes the signature with the secret, the body hash and the path", () => {
    const base = { method: "PUT", url: "http://127.0.0.1:19000/kok-dev/a.txt", headers: {}, payloadHash: sha256Hex("x") };
    const scope = { region: "us-east-1", service: "s3", now: new Date("2026-12-05T00:00:00Z") };
    const creds = { accessKeyId: "KOKEXAMPLE", secretAccessKey: "one" };
    const reference = signV4(base, creds, scope).signature;
    expect(signV4(base, { ...creds, secretAccessKey: "two" }, scope).signature).not.toBe(reference);
    expect(signV4({ ...base, payloadHash: sha256Hex("y") }, creds, scope).signature).not.toBe(reference);
    expect(signV4({ ...base, url: "http://127.0.0.1:19000/kok-dev/b.txt" }, creds, scope).signature).not.toBe(reference);
    expect(signV4(base, creds, scope).headers.host).toBe("127.0.0.1:19000");
  });

  it("encodes as RFC 3986 wants, sorts the query by key then value", () => {
    expect(uriEncode("a b!'()*~._-/")).toBe("a%20b%21%27%28%29%2A~._-%2F");
    const signed = signV4(
      { method: "GET", url: "http://h/b/my%20key?prefix=x%2Fy&list-type=2&a=2&a=1", headers: {}, payloadHash: EMPTY_SHA256 },
      { accessKeyId: "k", secretAccessKey: "s" },
      { region: "us-east-1", service: "s3", now: new Date(0) },
    );
    const [, path, query] = signed.canonicalRequest.split("\n");
    expect(path).toBe("/b/my%20key");
    expect(query).toBe("a=1&a=2&list-type=2&prefix=x%2Fy");
    expect(amzDate(new Date("2026-12-05T06:07:08.999Z"))).toBe("20261205T060708Z");
  });
});
