import { z } from 'zod';
import { configSchema } from './schema.js';

/** The published JSON Schema of sluice.yaml (docs/sluice.schema.json), generated from the zod schema. */
export function configJsonSchema(): Record<string, unknown> {
  return {
    $id: 'https://sluice.dev/schema/sluice.schema.json',
    title: 'Sluice configuration (sluice.yaml)',
    ...z.toJSONSchema(configSchema, {
      io: 'input',
      target: 'draft-2020-12',
      unrepresentable: 'any',
      // Defaults of duration keys sit before a transform, where zod does not emit them; durationKey records them in meta.
      override: (ctx) => {
        const js = ctx.jsonSchema as Record<string, unknown>;
        if ('durationDefault' in js) {
          js.default = js.durationDefault;
          delete js.durationDefault;
        }
      },
    }),
  };
}
