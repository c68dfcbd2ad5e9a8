/** The OpenAPI 3.1 description of every route of createApp (served at /openapi.json). */

const error = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
  },
};

/** The Open Inference Protocol's error object (kserve/open-inference-protocol specification/protocol/inference_rest.md). */
const oipError = {
  type: 'object',
  required: ['error'],
  properties: { error: { type: 'string', description: 'what went wrong' } },
};

/** OpenAI's error object (/v1/embeddings). */
const openAiError = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['message', 'type', 'param', 'code'],
      properties: {
        message: { type: 'string' },
        type: {
          type: 'string',
          enum: ['invalid_request_error', 'authentication_error', 'rate_limit_error', 'server_error'],
        },
        param: { type: ['string', 'null'], description: 'the request field at fault' },
        code: { type: 'string', description: 'machine code, e.g. url_not_supported, model_not_found, too_many_images' },
      },
    },
  },
};

const errRef = { $ref: '#/components/responses/Error' };
const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [String(c), errRef]));
const oipErrors = (...codes: number[]) =>
  Object.fromEntries(codes.map((c) => [String(c), { $ref: '#/components/responses/OipError' }]));
const openAiErrors = (...codes: number[]) =>
  Object.fromEntries(codes.map((c) => [String(c), { $ref: '#/components/responses/OpenAIError' }]));

const embeddingsBody = {
  required: true,
  content: {
    'application/json': {
      schema: {
        type: 'object',
        required: ['input'],
        properties: {
          input: {
            oneOf: [{ type: 'string' }, { type: 'array', minItems: 1, items: { type: 'string' } }],
            description:
              'images as data URIs (data:image/jpeg;base64,...) or plain base64; URLs are refused (400 url_not_supported)',
          },
          model: { type: 'string', description: 'model name, or name:version (default: the default model)' },
          encoding_format: {
            type: 'string',
            enum: ['float', 'base64'],
            default: 'float',
            description: 'base64: little-endian float32 bytes',
          },
          dimensions: { type: 'integer', description: "must equal the model's embedding size when given" },
          modality: { type: 'string', enum: ['image'], description: "Infinity's field; only images are embedded" },
          user: { type: 'string' },
        },
      },
    },
  },
};

const embeddingsResponse = {
  type: 'object',
  required: ['object', 'model', 'data', 'usage'],
  properties: {
    object: { const: 'list' },
    model: { type: 'string', description: 'name:version used' },
    data: {
      type: 'array',
      items: {
        type: 'object',
        required: ['object', 'index', 'embedding'],
        properties: {
          object: { const: 'embedding' },
          index: { type: 'integer' },
          embedding: {
            oneOf: [
              { type: 'array', items: { type: 'number' } },
              { type: 'string', description: 'base64 float32 LE' },
            ],
          },
        },
      },
    },
    usage: {
      type: 'object',
      required: ['prompt_tokens', 'total_tokens'],
      properties: {
        prompt_tokens: { type: 'integer', description: 'one per image' },
        total_tokens: { type: 'integer' },
      },
    },
  },
};

const imageBody = {
  required: true,
  content: {
    'image/jpeg': { schema: { type: 'string', format: 'binary' } },
    'image/png': { schema: { type: 'string', format: 'binary' } },
    'image/webp': { schema: { type: 'string', format: 'binary' } },
    'multipart/form-data': {
      schema: {
        type: 'object',
        description: 'every file part is an image (any field name); optional text fields model, version, top_k',
        properties: {
          images: { type: 'array', items: { type: 'string', format: 'binary' } },
          model: { type: 'string' },
          version: { type: 'string' },
          top_k: { type: 'integer' },
        },
      },
    },
    'application/json': {
      schema: {
        type: 'object',
        required: ['images'],
        properties: {
          images: {
            type: 'array',
            minItems: 1,
            items: { type: 'string', description: 'base64 (standard or URL-safe) or a data:image/...;base64, URI' },
          },
          model: { type: 'string' },
          version: { type: 'string' },
          top_k: { type: 'integer', minimum: 1 },
        },
      },
    },
  },
};

const modelParams = [
  {
    name: 'model',
    in: 'query',
    required: false,
    schema: { type: 'string' },
    description: 'model name (default: --default_model or the first)',
  },
  {
    name: 'version',
    in: 'query',
    required: false,
    schema: { type: 'string' },
    description: 'model version (default: latest)',
  },
];

const nameParam = {
  name: 'name',
  in: 'path',
  required: true,
  schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$' },
};
const versionParam = { name: 'version', in: 'path', required: true, schema: { type: 'string' } };

const tensor = {
  type: 'object',
  required: ['name', 'shape', 'datatype', 'data'],
  properties: {
    name: { type: 'string' },
    shape: { type: 'array', items: { type: 'integer' } },
    datatype: { type: 'string' },
    data: { type: 'array', items: {} },
  },
};

const inferOp = (summary: string, params: unknown[]) => ({
  summary,
  parameters: params,
  requestBody: {
    required: true,
    content: {
      'application/json': {
        schema: {
          type: 'object',
          required: ['inputs'],
          properties: {
            id: { type: 'string' },
            inputs: {
              type: 'array',
              minItems: 1,
              maxItems: 1,
              items: tensor,
              description: 'one UINT8 tensor "images" of shape [N, size, size, 3] (already resized and cropped RGB)',
            },
            outputs: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  name: { type: 'string' },
                  parameters: { type: 'object', properties: { binary_data: { type: 'boolean' } } },
                },
              },
              description: 'default: embedding (+ probabilities with a classifier); also features, logits',
            },
            parameters: {
              type: 'object',
              properties: { binary_data_output: { type: 'boolean', description: 'every output as binary data' } },
            },
          },
        },
      },
      'application/octet-stream': {
        schema: { type: 'string', format: 'binary' },
        description:
          "Triton's binary tensor data extension: the JSON request (its length in the Inference-Header-Content-Length header) " +
          'followed by the raw UINT8 tensor; the input has parameters.binary_data_size instead of data',
      },
    },
  },
  responses: {
    '200': {
      description:
        'inference result; with binary outputs, the JSON header (Inference-Header-Content-Length) then raw FP32 little-endian bytes',
      headers: {
        'Inference-Header-Content-Length': {
          schema: { type: 'integer' },
          description: 'only when some output is binary',
        },
      },
      content: {
        'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
        'application/json': {
          schema: {
            type: 'object',
            properties: {
              model_name: { type: 'string' },
              model_version: { type: 'string' },
              id: { type: 'string' },
              outputs: { type: 'array', items: tensor },
            },
          },
        },
      },
    },
    ...oipErrors(400, 401, 404, 413, 415, 429, 503),
  },
});

const metadataOp = (summary: string, params: unknown[]) => ({
  summary,
  parameters: params,
  responses: {
    '200': {
      description: 'KServe v2 model metadata',
      content: {
        'application/json': {
          schema: {
            type: 'object',
            properties: {
              name: { type: 'string' },
              versions: { type: 'array', items: { type: 'string' } },
              platform: { type: 'string' },
              inputs: { type: 'array', items: { type: 'object' } },
              outputs: { type: 'array', items: { type: 'object' } },
            },
          },
        },
      },
    },
    ...oipErrors(400, 401, 404),
  },
});

const json = (description: string, schema: unknown = { type: 'object' }) => ({
  description,
  content: { 'application/json': { schema } },
});

export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'cmc serve',
      version: '0.1.0',
      description:
        'Embeddings and classification with exported CMC encoders (onnxruntime-node), with dynamic batching. ' +
        'Images are decoded (EXIF-rotated, sRGB) and transformed exactly as the validation transform: shorter side to ' +
        'round(size*256/224) with Pillow-identical bilinear resampling, centre crop. Errors: { "error": { "code", "message" } } on ' +
        '/v1/embed, /v1/classify and the rest; OpenAI\'s { "error": { "message", "type", "param", "code" } } on /v1/embeddings; the Open ' +
        'Inference Protocol\'s { "error": "<message>" } on /v2. The same OIP service is served over gRPC (inference.GRPCInferenceService) on --grpc_port.',
    },
    components: {
      schemas: { Error: error, OipError: oipError, OpenAIError: openAiError, EmbeddingsResponse: embeddingsResponse },
      responses: {
        Error: {
          description: 'error',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
        },
        OipError: {
          description: 'error (Open Inference Protocol shape)',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/OipError' } } },
        },
        OpenAIError: {
          description: "error (OpenAI's shape)",
          content: { 'application/json': { schema: { $ref: '#/components/schemas/OpenAIError' } } },
        },
      },
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'only when the server runs with --auth_token' },
      },
    },
    paths: {
      '/v1/embed': {
        post: {
          summary: 'Embeddings of one or more images',
          parameters: modelParams,
          requestBody: imageBody,
          responses: {
            '200': json('one embedding per image', {
              type: 'object',
              properties: {
                model: { type: 'string' },
                version: { type: 'string' },
                dim: { type: 'integer' },
                embeddings: { type: 'array', items: { type: 'array', items: { type: 'number' } } },
              },
            }),
            ...errors(400, 401, 404, 413, 415, 422, 429, 503),
          },
        },
      },
      '/v1/classify': {
        post: {
          summary: 'Top-k classes of one or more images (models exported with a probe head)',
          parameters: [
            ...modelParams,
            { name: 'top_k', in: 'query', required: false, schema: { type: 'integer', minimum: 1, default: 5 } },
          ],
          requestBody: imageBody,
          responses: {
            '200': json('top-k per image', {
              type: 'object',
              properties: {
                model: { type: 'string' },
                version: { type: 'string' },
                predictions: {
                  type: 'array',
                  items: {
                    type: 'array',
                    items: {
                      type: 'object',
                      properties: {
                        label: { type: 'string' },
                        index: { type: 'integer' },
                        probability: { type: 'number' },
                      },
                    },
                  },
                },
              },
            }),
            ...errors(400, 401, 404, 413, 415, 422, 429, 503),
          },
        },
      },
      '/v1/embeddings': {
        post: {
          summary: "Embeddings in OpenAI's shape (images as data URIs or base64; the openai client works unmodified)",
          requestBody: embeddingsBody,
          responses: {
            '200': json('one embedding per input image', { $ref: '#/components/schemas/EmbeddingsResponse' }),
            ...openAiErrors(400, 401, 404, 413, 415, 422, 429, 503),
          },
        },
      },
      '/v1/models': {
        get: {
          summary: 'Loaded models and versions',
          responses: { '200': json('the model repository'), ...errors(401) },
        },
      },
      '/v2': {
        get: {
          summary: 'KServe v2 server metadata (extensions: binary_tensor_data)',
          responses: { '200': json('server metadata'), ...oipErrors(401) },
        },
      },
      '/v2/health/live': { get: { summary: 'Liveness', responses: { '200': json('the process is up') } } },
      '/v2/health/ready': {
        get: {
          summary: 'Readiness (models loaded, not draining)',
          responses: { '200': json('ready'), '503': json('not ready') },
        },
      },
      '/v2/models/{name}': { get: metadataOp('KServe v2 model metadata (latest version)', [nameParam]) },
      '/v2/models/{name}/versions/{version}': {
        get: metadataOp('KServe v2 model metadata', [nameParam, versionParam]),
      },
      '/v2/models/{name}/ready': {
        get: {
          summary: 'Model readiness',
          parameters: [nameParam],
          responses: { '200': json('ready'), ...oipErrors(400, 401, 404) },
        },
      },
      '/v2/models/{name}/versions/{version}/ready': {
        get: {
          summary: 'Model version readiness',
          parameters: [nameParam, versionParam],
          responses: { '200': json('ready'), ...oipErrors(400, 401, 404) },
        },
      },
      '/v2/models/{name}/infer': { post: inferOp('KServe v2 inference (latest version)', [nameParam]) },
      '/v2/models/{name}/versions/{version}/infer': { post: inferOp('KServe v2 inference', [nameParam, versionParam]) },
      '/metrics': {
        get: {
          summary: 'Prometheus metrics (text exposition 0.0.4; names in serve/metrics.ts)',
          responses: {
            '200': { description: 'metrics', content: { 'text/plain': { schema: { type: 'string' } } } },
            ...errors(401),
          },
        },
      },
      '/models/{name}/{file}': {
        get: {
          summary: 'Read-only model files for the browser demo: manifest.json and the *.onnx files its manifest lists',
          parameters: [
            nameParam,
            { name: 'file', in: 'path', required: true, schema: { type: 'string' } },
            { name: 'version', in: 'query', required: false, schema: { type: 'string' } },
          ],
          responses: {
            '200': { description: 'the file', content: { 'application/octet-stream': {}, 'application/json': {} } },
            ...errors(400, 401, 404),
          },
        },
      },
      '/openapi.json': { get: { summary: 'This document', responses: { '200': json('OpenAPI 3.1') } } },
      '/': {
        get: {
          summary: 'The browser demo (web/dist), or a page saying it is not built',
          responses: { '200': { description: 'HTML', content: { 'text/html': {} } } },
        },
      },
    },
  };
}
