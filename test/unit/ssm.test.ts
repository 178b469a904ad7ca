import { describe, expect, it } from 'vitest';
import { deadlineIn } from '../../lib/core/deadline';
import { errorFromResponse, getParameters, signedRequest, ssmEndpoint, SsmError } from '../../lib/runtime/ssm';

const creds = { accessKeyId: 'AKIDUNITTEST0000000', secretAccessKey: 'unit-secret-access-key-0000', sessionToken: 'unit-session-token-0000' };

describe('ssmEndpoint', () => {
  it('is SSM\'s regional endpoint by default (amazonaws.com.cn in the China regions)', () => {
    expect(ssmEndpoint({ AWS_REGION: 'eu-west-1' }).url.toString()).toBe('https://ssm.eu-west-1.amazonaws.com/');
    expect(ssmEndpoint({ AWS_REGION: 'cn-north-1' }).url.toString()).toBe('https://ssm.cn-north-1.amazonaws.com.cn/');
    expect(ssmEndpoint({ AWS_REGION: 'us-gov-west-1' }).region).toBe('us-gov-west-1');
  });

  it('AWS_ENDPOINT_URL_SSM wins over AWS_ENDPOINT_URL, which wins over the default (the SDK\'s order)', () => {
    const env = { AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL: 'http://127.0.0.1:4566', AWS_ENDPOINT_URL_SSM: 'http://127.0.0.1:9999/' };
    expect(ssmEndpoint(env).url.toString()).toBe('http://127.0.0.1:9999/');
    expect(ssmEndpoint({ ...env, AWS_ENDPOINT_URL_SSM: ' ' }).url.toString()).toBe('http://127.0.0.1:4566/');
  });

  it('refuses a missing or odd region, and an endpoint that is not a plain http(s) URL, without echoing it', () => {
    expect(() => ssmEndpoint({})).toThrow(/^AWS_REGION is not set/);
    expect(() => ssmEndpoint({ AWS_REGION: 'evil.example.com/x' })).toThrow(/^AWS_REGION is not a region name/);
    expect(() => ssmEndpoint({ AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL_SSM: 'https://u:hunter2@ssm.example' })).toThrow(
      /^AWS_ENDPOINT_URL_SSM must be an http\(s\) URL without credentials/,
    );
    expect(() => ssmEndpoint({ AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL_SSM: 'https://u:hunter2@ssm.example' })).not.toThrow(/hunter2/);
    expect(() => ssmEndpoint({ AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL: 'ftp://x' })).toThrow(/^AWS_ENDPOINT_URL must be/);
  });
});

describe('signedRequest', () => {
  it('is an awsJson1_1 GetParameters call signed for ssm in the region, with the session token', () => {
    const headers = signedRequest(new URL('https://ssm.eu-west-1.amazonaws.com/'), 'eu-west-1', creds, '{"Names":["/a"],"WithDecryption":true}', new Date('2026-12-02T10:00:00Z'));
    expect(headers).toMatchObject({
      'Content-Type': 'application/x-amz-json-1.1',
      'X-Amz-Target': 'AmazonSSM.GetParameters',
      'X-Amz-Date': '20261202T100000Z',
      'X-Amz-Security-Token': creds.sessionToken,
      Host: 'ssm.eu-west-1.amazonaws.com',
    });
    expect(headers.Authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDUNITTEST0000000\/20261202\/eu-west-1\/ssm\/aws4_request, SignedHeaders=[a-z0-9;-]*x-amz-security-token;x-amz-target, Signature=[0-9a-f]{64}$/,
    );
  });
});

describe('errorFromResponse', () => {
  it('names the error by AWS\'s __type, namespace and suffix dropped, with message or Message', () => {
    const denied = errorFromResponse({ status: 400, body: '{"__type":"com.amazonaws.ssm#AccessDeniedException","Message":"User: x is not authorized"}' }, creds);
    expect(denied).toBeInstanceOf(SsmError);
    expect([denied.name, denied.message, denied.status]).toEqual(['AccessDeniedException', 'User: x is not authorized', 400]);
    const throttled = errorFromResponse({ status: 400, body: '{"__type":"ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/","message":"Rate exceeded"}' }, creds);
    expect([throttled.name, throttled.message]).toEqual(['ThrottlingException', 'Rate exceeded']);
    expect(errorFromResponse({ status: 500, body: '{"__type":"InternalServerError"}' }, creds).message).toBe('HTTP 500');
  });

  it('a body that is not an AWS error is not quoted', () => {
    const error = errorFromResponse({ status: 502, body: '<html>Bad gateway, and here is your header: x-amz-security-token: abc</html>' }, creds);
    expect([error.name, error.message]).toEqual(['SsmHttpError', 'HTTP 502 from the SSM endpoint, not an AWS error answer']);
  });

  it('never carries a credential: AWS\'s message is cut at its first blank line (the canonical request follows) and redacted', () => {
    const message =
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.\n\n' +
      `The Canonical String for this request should have been\n'POST\n/\n\nx-amz-security-token:${creds.sessionToken}\n'`;
    const error = errorFromResponse({ status: 400, body: JSON.stringify({ __type: 'InvalidSignatureException', message }) }, creds);
    expect(error.message).toBe('The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.');
    const echoed = errorFromResponse({ status: 403, body: JSON.stringify({ __type: 'UnrecognizedClientException', message: `token ${creds.sessionToken} and key ${creds.secretAccessKey}` }) }, creds);
    expect(echoed.message).toBe('token *** and key ***');
  });
});

describe('getParameters', () => {
  it('without credentials says which variables are missing, and calls nobody', async () => {
    const env = { AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL_SSM: 'http://127.0.0.1:1/' };
    await expect(getParameters(['/a'], deadlineIn(1000), { env })).rejects.toThrow(/^AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set \(Lambda sets them/);
  });
});
