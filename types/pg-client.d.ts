// node-postgres's Client alone: importing it by path keeps pg's Pool and its
// lazy pg-native require out of the bundle. @types/pg types the index only.
declare module 'pg/lib/client' {
  import { Client } from 'pg';
  export = Client;
}
