#!/usr/bin/env node
// The `fleet` command. TypeScript sources run through tsx, resolved from this package.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
