import tseslint from 'typescript-eslint';
import { importX, createNodeResolver } from 'eslint-plugin-import-x';

/**
 * The allowed direction of imports between top-level folders, lowest first:
 *   protocol ← adapters, signing ← node, images ← worker, coordinator, scanner ← client ← deploy ← cli, bench, scripts
 * (scanner imports only protocol, adapters and node)
 * (tests may import anything). Each zone forbids a folder from importing what sits above it.
 */
const ABOVE = {
  protocol: ['adapters', 'signing', 'node', 'images', 'worker', 'coordinator', 'client', 'scanner', 'deploy', 'cli', 'bench', 'scripts'],
  adapters: ['signing', 'node', 'images', 'worker', 'coordinator', 'client', 'scanner', 'deploy', 'cli', 'bench', 'scripts'],
  signing: ['node', 'images', 'worker', 'coordinator', 'client', 'scanner', 'deploy', 'cli', 'bench', 'scripts'],
  node: ['images', 'worker', 'coordinator', 'client', 'scanner', 'deploy', 'cli', 'bench', 'scripts'],
  images: ['worker', 'coordinator', 'client', 'scanner', 'deploy', 'cli', 'bench', 'scripts'],
  worker: ['coordinator', 'client', 'scanner', 'deploy', 'cli', 'bench', 'scripts'],
  coordinator: ['worker', 'client', 'scanner', 'deploy', 'cli', 'bench', 'scripts'],
  client: ['worker', 'coordinator', 'scanner', 'deploy', 'cli', 'bench', 'scripts'],
  scanner: ['signing', 'images', 'worker', 'coordinator', 'client', 'deploy', 'cli', 'bench', 'scripts'],
  deploy: ['cli', 'bench', 'scripts'],
  cli: ['bench', 'scripts'],
  bench: ['cli', 'scripts'],
  scripts: ['cli', 'bench'],
};
const zones = Object.entries(ABOVE).map(([target, above]) => ({
  target: `./${target}`,
  from: [...above, 'test'].map((f) => `./${f}`),
  message: `${target}/ sits below these folders (see the layer order in eslint.config.js)`,
}));

export default tseslint.config(
  { ignores: ['node_modules/**', 'bin/**', 'dist/**', 'docs/**', 'ui/dist/**', 'test-artifacts/**', 'test/conformance/corpus/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js'] })] },
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: false, requireDefaultForNonUnion: false }],
      '@typescript-eslint/only-throw-error': 'error',
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-restricted-paths': ['error', { zones }],
      'no-console': 'error',
    },
  },
  {
    files: ['cli/**/*.ts', 'bench/**/*.ts', 'test/**/*.ts', 'scripts/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
);
