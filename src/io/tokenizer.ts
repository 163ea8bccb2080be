// Hugging Face tokenizers: tokenizer.json (+ tokenizer_config.json) through @huggingface/tokenizers,
// chat templates through @huggingface/jinja.
//
// Contract: loadTokenizer(dir) reads `tokenizer.json` (required), `tokenizer_config.json`
// (optional: special tokens, chat template) and `chat_template.jinja` (optional; newer
// transformers save the template there, and it takes precedence as in transformers). Errors name
// the file. encode/decode follow the Rust `tokenizers` library (tested against it); special token
// ids are resolved from the token strings in tokenizer_config.json, as transformers does.
// createTokenizer() builds the same object from already-parsed JSON (no file system: browsers).

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { isPlainObject, parseJsonLarge, parseJsonStrict } from "./json.js";

export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

interface EncodeOptions {
  /** Add the post-processor's special tokens (BOS/EOS templates). Default true, as in HF. */
  addSpecialTokens?: boolean;
}
interface DecodeOptions {
  /** Drop special tokens from the output. Default false, as in HF. */
  skipSpecialTokens?: boolean;
}
interface ChatTemplateOptions {
  /** Append the assistant turn header. Default false, as in transformers. */
  addGenerationPrompt?: boolean;
  /** Extra template variables (e.g. `enable_thinking`, `tools`), as apply_chat_template's kwargs. */
  variables?: Record<string, unknown>;
}

export interface Tokenizer {
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** Renders the chat template to text (tokenize it with encode(text, { addSpecialTokens: false })). */
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string;
  tokenToId(token: string): number | undefined;
  readonly hasChatTemplate: boolean;
  readonly eosTokenId: number | null;
  readonly bosTokenId: number | null;
  readonly padTokenId: number | null;
  /** Number of ids (vocabulary plus added tokens): max id + 1. */
  readonly vocabSize: number;
}

export const TOKENIZER_FILE = "tokenizer.json";
const TOKENIZER_CONFIG_FILE = "tokenizer_config.json";
const CHAT_TEMPLATE_FILE = "chat_template.jinja";
const MAX_TOKENIZER_BYTES = 512 * 2 ** 20;

const SPECIAL_TOKEN_KEYS = [
  "bos_token",
  "eos_token",
  "unk_token",
  "sep_token",
  "pad_token",
  "cls_token",
  "mask_token",
] as const;

/** A special token in tokenizer_config.json: a string, an AddedToken dict {content, ...}, or null. */
function tokenString(config: Record<string, unknown>, key: string, source: string): string | null {
  const value = config[key];
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  if (isPlainObject(value) && typeof value.content === "string") return value.content;
  throw new Error(
    `${source}: "${key}" must be a string, a {"content": ...} object or null, got ${JSON.stringify(value)}`,
  );
}

/** The template named "default" when tokenizer_config.json has a list of named templates. */
function pickTemplate(value: unknown, source: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value.find((t) => isPlainObject(t) && t.name === "default");
    if (named !== undefined && typeof named.template === "string") return named.template;
  }
  throw new Error(
    `${source}: "chat_template" must be a string or a list with a {"name": "default", "template": ...} entry`,
  );
}

/** Builds a tokenizer from parsed tokenizer.json / tokenizer_config.json contents. */
function createTokenizer(
  tokenizerJson: unknown,
  tokenizerConfig: unknown = {},
  chatTemplate: string | null = null,
  source = ".",
): Tokenizer {
  const jsonName = join(source, TOKENIZER_FILE);
  const configName = join(source, TOKENIZER_CONFIG_FILE);
  if (!isPlainObject(tokenizerJson) || !isPlainObject(tokenizerJson.model)) {
    throw new Error(`${jsonName}: must be a JSON object with a "model" object`);
  }
  if (!isPlainObject(tokenizerConfig)) throw new Error(`${configName}: must be a JSON object`);
  let inner: HfTokenizer;
  try {
    inner = new HfTokenizer(tokenizerJson, tokenizerConfig);
  } catch (error) {
    throw new Error(`${jsonName}: unsupported or malformed tokenizer: ${(error as Error).message}`);
  }
  const specialTokens: Record<string, string | null> = {};
  for (const key of SPECIAL_TOKEN_KEYS)
    specialTokens[key] = tokenString(tokenizerConfig, key, configName);
  const idOf = (key: string): number | null => {
    const token = specialTokens[key];
    if (token === null || token === undefined) return null;
    const id = inner.token_to_id(token);
    if (id === undefined)
      throw new Error(`${configName}: "${key}" ${JSON.stringify(token)} is not in the vocabulary`);
    return id;
  };

  const templateText = chatTemplate ?? pickTemplate(tokenizerConfig.chat_template, configName);
  const templateSource = chatTemplate !== null ? join(source, CHAT_TEMPLATE_FILE) : configName;
  let template: Template | null = null;
  if (templateText !== null) {
    try {
      template = new Template(templateText);
    } catch (error) {
      throw new Error(
        `${templateSource}: chat template does not parse: ${(error as Error).message}`,
      );
    }
  }

  let maxId = -1;
  for (const id of inner.get_vocab(true).values()) if (id > maxId) maxId = id;

  return {
    encode: (text, options = {}) =>
      inner.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids,
    decode: (ids, options = {}) =>
      inner.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false }),
    applyChatTemplate(messages, options = {}) {
      if (template === null)
        throw new Error(
          `${source}: the tokenizer has no chat template (${configName} has no "chat_template")`,
        );
      try {
        return template.render({
          ...specialTokens,
          ...options.variables,
          messages,
          add_generation_prompt: options.addGenerationPrompt ?? false,
        });
      } catch (error) {
        throw new Error(`${templateSource}: chat template failed: ${(error as Error).message}`);
      }
    },
    tokenToId: (token) => inner.token_to_id(token),
    hasChatTemplate: template !== null,
    eosTokenId: idOf("eos_token"),
    bosTokenId: idOf("bos_token"),
    padTokenId: idOf("pad_token"),
    vocabSize: maxId + 1,
  };
}

async function readText(path: string, optional: boolean): Promise<string | null> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    if (optional && (error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new Error(`${path}: cannot read: ${(error as Error).message}`);
  }
  if (bytes.byteLength > MAX_TOKENIZER_BYTES)
    throw new Error(`${path}: ${bytes.byteLength} bytes is too large`);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`${path}: not valid UTF-8`);
  }
}

/** Loads the tokenizer of a Hugging Face model directory. */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  const jsonPath = join(dir, TOKENIZER_FILE);
  const configPath = join(dir, TOKENIZER_CONFIG_FILE);
  const [jsonText, configText, templateText] = await Promise.all([
    readText(jsonPath, false),
    readText(configPath, true),
    readText(join(dir, CHAT_TEMPLATE_FILE), true),
  ]);
  const tokenizerJson = parseJsonLarge(jsonText as string, jsonPath);
  const config = configText === null ? {} : parseJsonStrict(configText, configPath);
  return createTokenizer(tokenizerJson, config, templateText, dir);
}
